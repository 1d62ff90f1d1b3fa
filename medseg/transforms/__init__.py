"""Image and mask transforms shared by training and prediction."""
