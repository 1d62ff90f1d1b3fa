"""The report's stylesheet (screen and print), kept in Python so it ships without package-data rules."""

CSS = """
:root { --ink: #1b1b1b; --muted: #5f6368; --rule: #d9d9d9; --band: #f5f7fa; --accent: #0072B2; --warn: #b00020; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 12px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 6px 18px; margin: 0; }
.facts div { border-left: 3px solid var(--accent); padding: 2px 0 2px 8px; min-width: 0; }
.facts dt { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.facts dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.notes { margin-top: 18px; background: #fff8e1; border: 1px solid #f0c36d; border-radius: 4px; padding: 4px 16px 8px; }
.notes h2 { border: none; margin-top: 8px; }
.notes li { overflow-wrap: break-word; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--rule); text-align: right; white-space: nowrap; }
th { font-size: 12px; color: var(--muted); font-weight: 600; vertical-align: bottom; white-space: normal; }
td.name, th.name { text-align: left; white-space: normal; overflow-wrap: break-word; min-width: 7em; }
tbody tr:nth-child(even) { background: var(--band); }
td.warn { color: var(--warn); font-weight: 700; }
.ci { color: var(--muted); font-size: 12px; }
.small { font-size: 12px; color: var(--muted); }
figure { margin: 0; break-inside: avoid; page-break-inside: avoid; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 11px; color: var(--muted); margin-top: 2px; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px; align-items: start; }
.overlays { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 14px; margin-top: 12px; }
.worst { margin-bottom: 6px; }
.legend { font-size: 12px; display: flex; flex-wrap: wrap; gap: 6px 18px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -1px;
            border: 1px solid #999; }
.definitions dl { display: grid; grid-template-columns: 170px 1fr; gap: 4px 14px; font-size: 13px; }
.definitions dt { font-weight: 600; font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; }
.definitions dd { margin: 0; }
footer { margin-top: 32px; font-size: 11px; color: var(--muted); border-top: 1px solid var(--rule); padding-top: 8px; }
@media (max-width: 640px) { main { padding: 14px; } .definitions dl { grid-template-columns: 1fr; } }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { font-size: 10pt; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  tr, figure { break-inside: avoid; }
  .table-wrap { overflow: visible; }
  th, td { padding: 3px 4px; }
  .summary .ci { display: block; }
  .summary { font-size: 9pt; }
  .plots { grid-template-columns: 1fr 1fr; }
  .overlays { grid-template-columns: repeat(3, 1fr); }
}
"""
