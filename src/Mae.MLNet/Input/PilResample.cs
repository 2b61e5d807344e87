namespace Mae.MLNet.Input;

/// <summary>
/// Pillow's 8-bit separable resampling (<c>ImagingResampleHorizontal_8bpc</c>, then <c>…Vertical_8bpc</c>) of one
/// image on the CPU: integer multiply-adds with the 22-bit fixed-point taps of <see cref="PilAxis"/>, a rounding
/// offset of ½, and the result clamped to [0, 255] after each pass — so the output bytes equal PIL's.
/// The horizontal flip is folded into the first pass (it commutes with the second).
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
    public static int TempBytes(PilAxis xs, PilAxis ys, int channels)
    {
        var (first, end) = ys.InputRange();
        return checked((end - first) * xs.OutSize * channels);
    }

    /// <summary>
    /// Resamples <paramref name="src"/> (rows of <paramref name="srcStride"/> bytes, <paramref name="pixelBytes"/>
    /// per pixel, the first <paramref name="channels"/> of them used) to <paramref name="dst"/>:
    /// [ys.OutSize, xs.OutSize, channels] bytes, interleaved.
    /// </summary>
    public static void Resample(byte* src, int srcStride, int pixelBytes, int channels, PilAxis xs, PilAxis ys, bool flip,
        byte* tmp, byte* dst)
    {
        var (y0, y1) = ys.InputRange();
        int outW = xs.OutSize, rows = y1 - y0;
        Horizontal(src + (long)y0 * srcStride, srcStride, pixelBytes, channels, rows, xs, flip, tmp);
        Vertical(tmp, outW * channels, y0, ys, dst);
    }

    static void Horizontal(byte* src, int srcStride, int pixelBytes, int channels, int rows, PilAxis xs, bool flip, byte* dst)
    {
        int outW = xs.OutSize, k = xs.KSize;
        fixed (int* kk = xs.Fixed)
        fixed (int* first = xs.First)
        fixed (int* count = xs.Count)
        {
            for (int y = 0; y < rows; y++)
            {
                byte* row = src + (long)y * srcStride;
                byte* outRow = dst + (long)y * outW * channels;
                for (int xx = 0; xx < outW; xx++)
                {
                    int* w = kk + xx * k;
                    byte* p = row + first[xx] * pixelBytes;
                    int n = count[xx];
                    int o = (flip ? outW - 1 - xx : xx) * channels;
                    if (channels == 3)
                    {
                        int s0 = Half, s1 = Half, s2 = Half;
                        for (int x = 0; x < n; x++, p += pixelBytes)
                        {
                            int c = w[x];
                            s0 += p[0] * c;
                            s1 += p[1] * c;
                            s2 += p[2] * c;
                        }
                        outRow[o] = Clip8(s0);
                        outRow[o + 1] = Clip8(s1);
                        outRow[o + 2] = Clip8(s2);
                    }
                    else
                    {
                        int s0 = Half;
                        for (int x = 0; x < n; x++, p += pixelBytes) s0 += p[0] * w[x];
                        outRow[o] = Clip8(s0);
                    }
                }
            }
        }
    }

    /// <summary>Vertical pass over rows of <paramref name="rowBytes"/> bytes; <paramref name="rowOffset"/> is the input
    /// row held in the first row of <paramref name="src"/>. Accumulates whole rows at a time (vectorisable).</summary>
    static void Vertical(byte* src, int rowBytes, int rowOffset, PilAxis ys, byte* dst)
    {
        int k = ys.KSize;
        var acc = rowBytes <= 4096 ? stackalloc int[rowBytes] : new int[rowBytes];
        fixed (int* a = acc)
        fixed (int* kk = ys.Fixed)
        {
            for (int yy = 0; yy < ys.OutSize; yy++)
            {
                new Span<int>(a, rowBytes).Fill(Half);
                int* w = kk + yy * k;
                int n = ys.Count[yy];
                byte* r = src + (long)(ys.First[yy] - rowOffset) * rowBytes;
                for (int y = 0; y < n; y++, r += rowBytes)
                {
                    int c = w[y];
                    for (int i = 0; i < rowBytes; i++) a[i] += r[i] * c;
                }
                byte* o = dst + (long)yy * rowBytes;
                for (int i = 0; i < rowBytes; i++) o[i] = Clip8(a[i]);
            }
        }
    }
}
