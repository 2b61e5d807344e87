using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Mae.MLNet.Input;

/// <summary>
/// Pillow's 8-bit separable resampling (<c>ImagingResampleHorizontal_8bpc</c>, then <c>…Vertical_8bpc</c>) of one
/// image on the CPU: integer multiply-adds with the 22-bit fixed-point taps of <see cref="PilAxis"/>, a rounding
/// offset of ½, and the result clamped to [0, 255] after each pass — so the output bytes equal PIL's.
/// Pixels keep their layout through both passes (4 bytes RGBA or 1 byte grey; PIL also stores RGB in 4 bytes).
/// The horizontal flip is folded into the first pass (it commutes with the second). Integer sums do not depend on
/// the order of their terms, so the SIMD paths give the scalar path's bytes exactly.
/// </summary>
internal static unsafe class PilResample
{
    const int Half = 1 << (PilAxis.PrecisionBits - 1);

    static byte Clip8(int v)
    {
        v >>= PilAxis.PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    /// <summary>Bytes of the intermediate buffer <see cref="Resample"/> needs.</summary>
    public static int TempBytes(PilAxis xs, PilAxis ys, int pixelBytes)
    {
        var (first, end) = ys.InputRange();
        return checked((end - first) * xs.OutSize * pixelBytes);
    }

    /// <summary>
    /// Resamples <paramref name="src"/> (rows of <paramref name="srcStride"/> bytes, <paramref name="pixelBytes"/> per
    /// pixel) to <paramref name="dst"/>: [ys.OutSize, xs.OutSize, pixelBytes] bytes.
    /// </summary>
    public static void Resample(byte* src, int srcStride, int pixelBytes, PilAxis xs, PilAxis ys, bool flip, byte* tmp, byte* dst)
    {
        var (y0, y1) = ys.InputRange();
        int rows = y1 - y0;
        if (pixelBytes == 4 && Sse41.IsSupported) Horizontal4(src + (long)y0 * srcStride, srcStride, rows, xs, flip, tmp);
        else Horizontal(src + (long)y0 * srcStride, srcStride, pixelBytes, rows, xs, flip, tmp);
        Vertical(tmp, xs.OutSize * pixelBytes, y0, ys, dst);
    }

    static void Horizontal(byte* src, int srcStride, int pb, int rows, PilAxis xs, bool flip, byte* dst)
    {
        int outW = xs.OutSize, k = xs.KSize;
        Span<int> acc = stackalloc int[4];
        fixed (int* kk = xs.Fixed)
        fixed (int* first = xs.First)
        fixed (int* count = xs.Count)
            for (int y = 0; y < rows; y++)
            {
                byte* row = src + (long)y * srcStride;
                byte* outRow = dst + (long)y * outW * pb;
                for (int xx = 0; xx < outW; xx++)
                {
                    int* w = kk + xx * k;
                    byte* p = row + first[xx] * pb;
                    int n = count[xx];
                    byte* o = outRow + (flip ? outW - 1 - xx : xx) * pb;
                    for (int c = 0; c < pb; c++)
                    {
                        int s = Half;
                        for (int x = 0; x < n; x++) s += p[x * pb + c] * w[x];
                        o[c] = Clip8(s);
                    }
                }
            }
    }

    /// <summary>RGBA: the four channels of a pixel in one 128-bit lane set.</summary>
    static void Horizontal4(byte* src, int srcStride, int rows, PilAxis xs, bool flip, byte* dst)
    {
        int outW = xs.OutSize, k = xs.KSize;
        var half = Vector128.Create(Half);
        fixed (int* kk = xs.Fixed)
        fixed (int* first = xs.First)
        fixed (int* count = xs.Count)
            for (int y = 0; y < rows; y++)
            {
                byte* row = src + (long)y * srcStride;
                uint* outRow = (uint*)(dst + (long)y * outW * 4);
                for (int xx = 0; xx < outW; xx++)
                {
                    int* w = kk + xx * k;
                    byte* p = row + first[xx] * 4;
                    int n = count[xx];
                    var s = half;
                    for (int x = 0; x < n; x++, p += 4)
                        s = Sse2.Add(s, Sse41.MultiplyLow(Sse41.ConvertToVector128Int32(p), Vector128.Create(w[x])));
                    var shifted = Sse2.ShiftRightArithmetic(s, PilAxis.PrecisionBits);
                    var packed = Sse2.PackUnsignedSaturate(Sse2.PackSignedSaturate(shifted, shifted), default);
                    outRow[flip ? outW - 1 - xx : xx] = packed.AsUInt32().ToScalar();
                }
            }
    }

    /// <summary>Vertical pass over rows of <paramref name="rowBytes"/> bytes; <paramref name="rowOffset"/> is the input
    /// row held in the first row of <paramref name="src"/>. Accumulates whole rows, 8 bytes per AVX2 step.</summary>
    static void Vertical(byte* src, int rowBytes, int rowOffset, PilAxis ys, byte* dst)
    {
        int k = ys.KSize;
        var acc = new int[rowBytes];
        fixed (int* a = acc)
        fixed (int* kk = ys.Fixed)
            for (int yy = 0; yy < ys.OutSize; yy++)
            {
                new Span<int>(a, rowBytes).Fill(Half);
                int* w = kk + yy * k;
                int n = ys.Count[yy];
                byte* r = src + (long)(ys.First[yy] - rowOffset) * rowBytes;
                int vecEnd = Avx2.IsSupported ? rowBytes & ~7 : 0;
                for (int y = 0; y < n; y++, r += rowBytes)
                {
                    int c = w[y];
                    int i = 0;
                    if (vecEnd > 0)
                    {
                        var cv = Vector256.Create(c);
                        for (; i < vecEnd; i += 8)
                            Avx.Store(a + i, Avx2.Add(Avx.LoadVector256(a + i), Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(r + i), cv)));
                    }
                    for (; i < rowBytes; i++) a[i] += r[i] * c;
                }
                byte* o = dst + (long)yy * rowBytes;
                int j = 0;
                if (vecEnd > 0)
                    for (; j < vecEnd; j += 8)
                    {
                        var v = Avx2.ShiftRightArithmetic(Avx.LoadVector256(a + j), PilAxis.PrecisionBits);
                        var s16 = Sse2.PackSignedSaturate(v.GetLower(), v.GetUpper());
                        *(ulong*)(o + j) = Sse2.PackUnsignedSaturate(s16, s16).AsUInt64().ToScalar();
                    }
                for (; j < rowBytes; j++) o[j] = Clip8(a[j]);
            }
    }
}
