//! Information theory of deep learning: the information plane (Tishby's binning and KDE,
//! Saxe et al.'s ReLU counterpoint), lossy-compression estimates on convolutional networks and
//! the estimators' accuracy on synthetic data with known mutual information.

pub mod ib_lossy;
pub mod ib_tishby;
pub mod mi_synthetic;
