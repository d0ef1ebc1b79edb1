//! In-memory training windows, drawn deterministically from (seed, step, batch slot).

use super::rng::{CounterRng, Stream};

/// One training item: mono samples (or codes) plus its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Track<T> {
    /// The content; may be empty when windows are read elsewhere (then `len` counts).
    pub data: Vec<T>,
    /// Length in units of `data` (what windows are drawn over).
    pub len: usize,
    /// Corpus artist id (0 = unknown).
    pub artist: u32,
    /// Corpus genre ids (0 = unknown), at most the model's genre slots.
    pub genres: Vec<u32>,
    /// Where this file starts inside its song, in audio samples (timing labels).
    pub offset_samples: usize,
    /// Length of the whole song in audio samples (timing labels).
    pub total_samples: usize,
    /// A name for messages.
    pub name: String,
}

/// A pool of the corpus items' lengths and labels, with no audio in it (`data` is empty).
pub fn length_pool<'a>(items: impl IntoIterator<Item = &'a crate::dataset::Item>) -> Pool<f32> {
    Pool::new(
        items
            .into_iter()
            .map(|it| Track {
                data: Vec::new(),
                len: it.n_samples as usize,
                artist: it.artist_id,
                genres: it.genre_ids.clone(),
                offset_samples: it.offset_samples() as usize,
                total_samples: it.song_samples() as usize,
                name: it.rel.clone(),
            })
            .collect(),
    )
}

/// Where one window comes from: track index and start position (in units of `data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPos {
    pub track: usize,
    pub start: usize,
}

/// A pool of tracks that windows are drawn from uniformly over all valid start positions
/// (longer tracks are drawn more often, as the official dataset does).
#[derive(Debug, Clone)]
pub struct Pool<T> {
    pub tracks: Vec<Track<T>>,
}

impl<T: Copy + Default> Pool<T> {
    pub fn new(tracks: Vec<Track<T>>) -> Self {
        Self { tracks }
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.iter().all(|t| t.len == 0)
    }

    /// Valid starts for a window of `len` with starts on multiples of `align`.
    fn starts(&self, track: usize, len: usize, align: usize) -> u64 {
        let n = self.tracks[track].len;
        if n <= len {
            1
        } else {
            ((n - len) / align.max(1) + 1) as u64
        }
    }

    /// The window for batch slot `slot` of step `step`.
    pub fn draw(&self, seed: u64, step: u64, slot: u64, len: usize, align: usize) -> WindowPos {
        let counts: Vec<u64> = (0..self.tracks.len())
            .map(|i| self.starts(i, len, align))
            .collect();
        let total: u64 = counts.iter().sum();
        let mut r = CounterRng::new(seed, Stream::Window, slot, step).below(total.max(1));
        for (i, c) in counts.iter().enumerate() {
            if r < *c {
                return WindowPos {
                    track: i,
                    start: r as usize * align.max(1),
                };
            }
            r -= c;
        }
        WindowPos { track: 0, start: 0 }
    }

    /// `n` fixed windows spread evenly over the pool (validation: the same every time).
    pub fn fixed(&self, n: usize, len: usize, align: usize) -> Vec<WindowPos> {
        let counts: Vec<u64> = (0..self.tracks.len())
            .map(|i| self.starts(i, len, align))
            .collect();
        let total: u64 = counts.iter().sum();
        let n = n.min(total as usize).max(usize::from(total > 0));
        (0..n)
            .map(|j| {
                let mut r = (j as u64 * total) / n as u64;
                for (i, c) in counts.iter().enumerate() {
                    if r < *c {
                        return WindowPos {
                            track: i,
                            start: r as usize * align.max(1),
                        };
                    }
                    r -= c;
                }
                WindowPos { track: 0, start: 0 }
            })
            .collect()
    }

    /// The data of a window, zero-padded (T::default()) past the end of a short track.
    pub fn slice(&self, w: WindowPos, len: usize) -> Vec<T> {
        let d = &self.tracks[w.track].data;
        let mut out = Vec::with_capacity(len);
        let end = (w.start + len).min(d.len());
        if w.start < end {
            out.extend_from_slice(&d[w.start..end]);
        }
        out.resize(len, T::default());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool<f32> {
        let t = |n: usize, v: f32| Track {
            data: vec![v; n],
            len: n,
            artist: 1,
            genres: vec![2],
            offset_samples: 0,
            total_samples: n,
            name: format!("{v}"),
        };
        Pool::new(vec![t(100, 1.0), t(1000, 2.0), t(5, 3.0)])
    }

    #[test]
    fn draws_are_deterministic_in_range_and_length_weighted() {
        let p = pool();
        let mut hits = [0usize; 3];
        for step in 0..3000 {
            let w = p.draw(7, step, 0, 20, 4);
            assert_eq!(w, p.draw(7, step, 0, 20, 4));
            assert_eq!(w.start % 4, 0);
            assert!(w.start + 20 <= p.tracks[w.track].data.len().max(20));
            hits[w.track] += 1;
        }
        // starts: 21, 246, 1 → track 1 dominates, the short track is rare but reachable.
        assert!(hits[1] > hits[0] * 5, "{hits:?}");
        assert!(hits[2] < 60, "{hits:?}");
    }

    #[test]
    fn fixed_windows_and_padding() {
        let p = pool();
        let f = p.fixed(4, 20, 1);
        assert_eq!(f.len(), 4);
        assert_eq!(f, p.fixed(4, 20, 1));
        let s = p.slice(WindowPos { track: 2, start: 0 }, 8);
        assert_eq!(s, vec![3.0, 3.0, 3.0, 3.0, 3.0, 0.0, 0.0, 0.0]);
    }
}
