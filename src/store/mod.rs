//! The records: the SQLite journal (everything) and results.tsv (karpathy's five columns).

pub mod import;
