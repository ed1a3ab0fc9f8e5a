//! The ProviderInterface field-path language (to be filled in).
