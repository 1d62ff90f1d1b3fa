// Load a DICOM-SEG with dcmjs's Cornerstone adapter (the loader OHIF / cornerstone-tools v4 use) and print its
// labelmap. Usage: NODE_PATH=.../node_modules node dcmjs_seg_check.js SEG.dcm SOURCE_FILE... (in slice order)
const fs = require("fs"); const dcmjs = require("dcmjs");
dcmjs.log.setLevel("error");
const [segFile, ...files] = process.argv.slice(2);
const buf = f => { const b = fs.readFileSync(f); return b.buffer.slice(b.byteOffset, b.byteOffset + b.length); };
const meta = {}; const imageIds = files.map((f, k) => "file:" + k);
files.forEach((f, k) => {
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(buf(f)).dict);
  const iop = ds.ImageOrientationPatient.map(Number);
  meta[imageIds[k]] = {
    imagePlaneModule: { rowCosines: iop.slice(0, 3), columnCosines: iop.slice(3), imagePositionPatient: ds.ImagePositionPatient.map(Number),
                        rows: ds.Rows, columns: ds.Columns, rowPixelSpacing: Number(ds.PixelSpacing[0]), columnPixelSpacing: Number(ds.PixelSpacing[1]),
                        frameOfReferenceUID: ds.FrameOfReferenceUID },
    sopCommonModule: { sopInstanceUID: ds.SOPInstanceUID, sopClassUID: ds.SOPClassUID },
    imagePixelModule: { rows: ds.Rows, columns: ds.Columns },
    generalSeriesModule: { seriesInstanceUID: ds.SeriesInstanceUID },
  };
});
const provider = { get: (type, id) => (meta[id] || {})[type] };
const r = dcmjs.adapters.Cornerstone.Segmentation.generateToolState(imageIds, buf(segFile), provider);
const labels = (r.segMetadata.data || []).filter(Boolean).map(s => s.SegmentLabel);
const map = new Uint16Array(r.labelmapBufferArray[0]);
process.stdout.write(JSON.stringify({ labels, nonzero: Array.from(map.keys()).filter(i => map[i]).map(i => [i, map[i]]) }));
