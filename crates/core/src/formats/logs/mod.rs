//! Run logs (being written)
