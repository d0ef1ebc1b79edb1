//! Which kernel multiplies a convolution's tiles: gemm's f32 micro-kernel (inference, and
//! training by default) or the split-bf16 AMX tiles of [`super::amx_split`] (`--amx-split`),
//! and a layer's weight held ready for either.

/// Which kernel a training or inference product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Products {
    /// gemm's f32 micro-kernel: inference (its bits are the reference's) and, by default,
    /// training.
    F32,
    /// f32 operands split into two bf16 parts on AMX tiles ([`super::amx_split`]; taken
    /// only where the CPU can, else F32).
    Split,
}

impl Products {
    /// The kernel for a training op's products: [`Products::Split`] where
    /// [`super::amx_split::enabled`].
    pub(crate) fn training() -> Self {
        if super::amx_split::enabled() {
            Products::Split
        } else {
            Products::F32
        }
    }
}

/// `dst (m × n) = [dst +] beta · a · b` with arbitrary strides, each operand given as
/// (column stride, row stride), single-threaded, on the kernel `p` picks.
///
/// # Safety
/// Every pointer must be valid for the extents its dimensions and strides give.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dcs, drs): (isize, isize),
    acc: bool,
    a: *const f32,
    (acs, ars): (isize, isize),
    b: *const f32,
    (bcs, brs): (isize, isize),
    beta: f32,
    p: Products,
) {
    if p == Products::Split && super::amx_split::supported() {
        // SAFETY: the CPU can (checked just above); pointers as the caller guarantees.
        return super::amx_split::gemm(
            (m, n, k),
            dst,
            (dcs, drs),
            acc,
            a,
            (acs, ars),
            b,
            (bcs, brs),
            beta,
        );
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dcs,
        drs,
        acc,
        a,
        acs,
        ars,
        b,
        bcs,
        brs,
        1.0,
        beta,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// A layer's weight as the left operand of its per-tile products: `m × k`, strides (column,
/// row), packed once for all the tiles where the kernel multiplies packed operands.
pub(crate) struct Weight<'a> {
    w: &'a [f32],
    mk: (usize, usize),
    strides: (isize, isize),
    packed: Option<super::amx_split::PackedA>,
}

impl<'a> Weight<'a> {
    pub(crate) fn new(
        p: Products,
        w: &'a [f32],
        mk: (usize, usize),
        strides: (isize, isize),
    ) -> Self {
        let (m, k) = mk;
        let last = (m.max(1) - 1) as isize * strides.1 + (k.max(1) - 1) as isize * strides.0;
        assert!(
            m == 0 || k == 0 || (last >= 0 && (last as usize) < w.len()),
            "weight extents"
        );
        // SAFETY: the extents were checked above; `times` runs the kernel only where supported.
        let packed = (p == Products::Split && super::amx_split::supported()).then(|| unsafe {
            super::amx_split::PackedA::new_in(Vec::new(), w.as_ptr(), mk, strides)
        });
        Weight {
            w,
            mk,
            strides,
            packed,
        }
    }

    /// `dst (m × n) = [dst +] beta · W · b`, single-threaded.
    ///
    /// # Safety
    /// `dst` and `b` valid for the extents their dimensions and strides give.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn times(
        &self,
        n: usize,
        dst: *mut f32,
        ds: (isize, isize),
        acc: bool,
        b: *const f32,
        bs: (isize, isize),
        beta: f32,
    ) {
        match &self.packed {
            Some(pa) => super::amx_split::gemm_packed(pa, n, dst, ds, acc, b, bs, beta),
            None => {
                let (m, k) = self.mk;
                let (a, a_s) = (self.w.as_ptr(), self.strides);
                gemm_strided((m, n, k), dst, ds, acc, a, a_s, b, bs, beta, Products::F32)
            }
        }
    }
}
