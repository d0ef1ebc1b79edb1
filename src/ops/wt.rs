//! The weight element types the small-batch kernels read (f32, f16, bf16), widened to f32 in
//! registers: 8 lanes (AVX2/F16C, [`super::gemv`]) or 16 (AVX-512F, [`super::gemv512`]).

use half::{bf16, f16};

/// Weight element types the kernels read.
pub trait Wt: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    /// Eight consecutive elements widened to f32.
    ///
    /// # Safety
    /// `p` must point at 8 readable elements and the CPU must have AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
    /// Sixteen consecutive elements widened to f32.
    ///
    /// # Safety
    /// `p` must point at 16 readable elements and the CPU must have AVX-512F.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512;
    /// Whether [`Wt::load32_eo`] exists: a whole cache line widened as its even and its odd
    /// columns (bf16, where that takes one instruction per 16 columns instead of two).
    const EVEN_ODD: bool = false;
    /// Thirty-two consecutive elements widened to f32: (columns 0, 2, …, 30; 1, 3, …, 31).
    ///
    /// # Safety
    /// `p` must point at 32 readable elements, the CPU must have AVX-512F, and `EVEN_ODD`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load32_eo(_p: *const Self) -> (std::arch::x86_64::__m512, std::arch::x86_64::__m512) {
        unreachable!("load32_eo without EVEN_ODD")
    }
}

impl Wt for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512 {
        std::arch::x86_64::_mm512_loadu_ps(p)
    }
}

impl Wt for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
    }
}

impl Wt for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // bf16 is the top half of an f32.
        let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
        _mm256_castsi256_ps(_mm256_slli_epi32(h, 16))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i));
        _mm512_castsi512_ps(_mm512_slli_epi32(h, 16))
    }
    const EVEN_ODD: bool = true;
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load32_eo(p: *const Self) -> (std::arch::x86_64::__m512, std::arch::x86_64::__m512) {
        use std::arch::x86_64::*;
        // Each 32-bit lane holds columns 2i (low half) and 2i + 1 (high half).
        let v = _mm512_loadu_si512(p as *const __m512i);
        let hi = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
        (
            _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)),
            _mm512_castsi512_ps(_mm512_and_si512(v, hi)),
        )
    }
}

/// Int8 weights (`--dtype q8`): the integer value; the caller applies each output's scale.
impl Wt for i8 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i)))
    }
}
