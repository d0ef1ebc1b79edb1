//! dsp (being written).
