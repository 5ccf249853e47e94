//! LLM proposers (placeholder).
