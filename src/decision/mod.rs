//! The keep/discard decision and its statistics (placeholder).
