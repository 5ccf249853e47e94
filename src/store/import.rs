//! Reading results.tsv files written by anyone (placeholder).
