//! Safe multi-document YAML parsing with limits (to be filled in).
