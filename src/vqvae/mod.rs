//! vqvae (being written).
