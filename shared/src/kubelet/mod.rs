//! Kubelet image credential providers: config decoding/validation and image matching (to be filled in).
