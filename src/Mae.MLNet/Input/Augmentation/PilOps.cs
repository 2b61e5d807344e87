namespace Mae.MLNet.Input;

/// <summary>An 8-bit image in memory: <see cref="Height"/> rows of <see cref="Width"/> pixels, <see cref="PixelStride"/>
/// bytes apart (4 for SkiaSharp's RGBA, whose alpha byte is ignored; 1 or 3 for packed grey or RGB), the first
/// <see cref="Channels"/> bytes of each pixel used (1 = Pillow's mode L, 3 = RGB).</summary>
internal readonly unsafe struct ByteImage(byte* data, int height, int width, int pixelStride, int channels)
{
    public byte* Data { get; init; } = data;
    public int Height { get; } = height;
    public int Width { get; } = width;
    public int PixelStride { get; } = pixelStride;
    public int Channels { get; } = channels;
    public byte* At(int y, int x) => Data + ((long)y * Width + x) * PixelStride;
    public int Pixels => Height * Width;
}

/// <summary>
/// The Pillow 9 operations timm's RandAugment calls (<c>timm/data/auto_augment.py</c>), on 8-bit images, with Pillow's
/// arithmetic: lookup tables built as ImageOps builds them, <c>Image.blend</c> in float32 truncated to 8 bits (the
/// ImageEnhance ops), the SMOOTH 3×3 filter in float32 with its rounding offset, and <c>Image.transform(AFFINE,
/// BICUBIC, fillcolor)</c> with Pillow's affine bicubic (the a = −1 cubic convolution, edge pixels repeated, a source
/// point outside the image gives the fill colour). The test <c>RandAugmentPilParityTest</c> compares every op with
/// Pillow's own output. Every op writes its result into <c>img</c>; <c>scratch</c> holds at least as many bytes.
/// </summary>
internal static unsafe class PilOps
{
    /// <summary><c>ImageOps.autocontrast(img)</c> (cutoff 0): each channel stretched from [lo, hi] to [0, 255].</summary>
    public static void AutoContrast(ByteImage img)
    {
        Span<byte> lut = stackalloc byte[256];
        for (int c = 0; c < img.Channels; c++)
        {
            int lo = 255, hi = 0;
            byte* p = img.Data + c;
            for (int i = 0; i < img.Pixels; i++, p += img.PixelStride)
            {
                if (*p < lo) lo = *p;
                if (*p > hi) hi = *p;
            }
            if (hi <= lo) continue;
            double scale = 255.0 / (hi - lo), offset = -lo * scale;
            for (int i = 0; i < 256; i++) lut[i] = (byte)Math.Clamp((int)(i * scale + offset), 0, 255);
            Map(img, c, lut);
        }
    }

    /// <summary><c>ImageOps.equalize(img)</c>: per channel, Pillow's cumulative-histogram lookup table.</summary>
    public static void Equalize(ByteImage img)
    {
        Span<long> h = stackalloc long[256];
        Span<byte> lut = stackalloc byte[256];
        for (int c = 0; c < img.Channels; c++)
        {
            h.Clear();
            byte* p = img.Data + c;
            for (int i = 0; i < img.Pixels; i++, p += img.PixelStride) h[*p]++;
            int last = 255;
            while (h[last] == 0) last--;
            int nonzero = 0;
            for (int i = 0; i < 256; i++) if (h[i] != 0) nonzero++;
            if (nonzero <= 1) continue;
            long step = (img.Pixels - h[last]) / 255;
            if (step == 0) continue;
            long n = step / 2;
            for (int i = 0; i < 256; i++)
            {
                lut[i] = (byte)Math.Min(n / step, 255);
                n += h[i];
            }
            Map(img, c, lut);
        }
    }

    /// <summary><c>ImageOps.invert</c>: 255 − v.</summary>
    public static void Invert(ByteImage img) => MapAll(img, v => 255 - v);

    /// <summary><c>ImageOps.posterize(img, bits)</c>: keep the <paramref name="bits"/> high bits (8 or more: unchanged,
    /// as timm skips the call; 0 or fewer: all zero).</summary>
    public static void Posterize(ByteImage img, int bits)
    {
        if (bits >= 8) return;
        int mask = bits <= 0 ? 0 : ~((1 << (8 - bits)) - 1) & 0xFF;
        MapAll(img, v => v & mask);
    }

    /// <summary><c>ImageOps.solarize(img, threshold)</c>: values ≥ the threshold inverted.</summary>
    public static void Solarize(ByteImage img, int threshold) => MapAll(img, v => v < threshold ? v : 255 - v);

    /// <summary>timm's <c>solarize_add</c>: values below 128 raised by <paramref name="add"/> (at most 255).</summary>
    public static void SolarizeAdd(ByteImage img, int add) => MapAll(img, v => v < 128 ? Math.Min(255, v + add) : v);

    /// <summary><c>ImageEnhance.Color(img).enhance(factor)</c>: blend with the image's luma (a grey image is unchanged).</summary>
    public static void Color(ByteImage img, double factor)
    {
        if (img.Channels != 3) return;   // Pillow: L → L is a copy, so the blend gives the image back
        float alpha = (float)factor;
        for (int y = 0; y < img.Height; y++)
            for (int x = 0; x < img.Width; x++)
            {
                byte* p = img.At(y, x);
                int l = Luma(p);
                for (int c = 0; c < 3; c++) p[c] = Blend(l, p[c], alpha);
            }
    }

    /// <summary><c>ImageEnhance.Contrast(img).enhance(factor)</c>: blend with a grey image of the luma's mean, rounded.</summary>
    public static void Contrast(ByteImage img, double factor)
    {
        long sum = 0;
        for (int y = 0; y < img.Height; y++)
            for (int x = 0; x < img.Width; x++) sum += img.Channels == 3 ? Luma(img.At(y, x)) : img.At(y, x)[0];
        int mean = (int)((double)sum / img.Pixels + 0.5);
        float alpha = (float)factor;
        MapAll(img, v => Blend(mean, v, alpha));
    }

    /// <summary><c>ImageEnhance.Brightness(img).enhance(factor)</c>: blend with black.</summary>
    public static void Brightness(ByteImage img, double factor)
    {
        float alpha = (float)factor;
        MapAll(img, v => Blend(0, v, alpha));
    }

    /// <summary><c>ImageEnhance.Sharpness(img).enhance(factor)</c>: blend with <c>img.filter(ImageFilter.SMOOTH)</c>
    /// (kernel [1 1 1; 1 5 1; 1 1 1] / 13, the border rows and columns copied).</summary>
    public static void Sharpness(ByteImage img, double factor, byte[] scratch)
    {
        if (img.Height < 3 || img.Width < 3) return;   // Pillow's filter returns a copy: the blend gives the image back
        float alpha = (float)factor;
        float k = (float)(1.0 / 13), k5 = (float)(5.0 / 13);
        fixed (byte* s = scratch)
        {
            var src = CopyTo(img, s, scratch.Length);
            for (int y = 1; y < img.Height - 1; y++)
                for (int x = 1; x < img.Width - 1; x++)
                    for (int c = 0; c < img.Channels; c++)
                    {
                        // Pillow's order: offset 0.5, then the row below, the row, the row above, each summed left to right.
                        float ss = 0.5f;
                        ss += Row(src, y + 1, x, c, k, k, k);
                        ss += Row(src, y, x, c, k, k5, k);
                        ss += Row(src, y - 1, x, c, k, k, k);
                        byte smooth = ss <= 0f ? (byte)0 : ss >= 255f ? (byte)255 : (byte)ss;
                        img.At(y, x)[c] = Blend(smooth, src.At(y, x)[c], alpha);
                    }
        }
    }

    static float Row(ByteImage img, int y, int x, int c, float k0, float k1, float k2)
        => img.At(y, x - 1)[c] * k0 + img.At(y, x)[c] * k1 + img.At(y, x + 1)[c] * k2;

    /// <summary><c>img.rotate(degrees, BICUBIC, fillcolor)</c> about the image centre (Pillow's matrix, cos and sin rounded
    /// to 15 decimals).</summary>
    public static void Rotate(ByteImage img, double degrees, ReadOnlySpan<byte> fill, byte[] scratch)
    {
        double angle = degrees % 360.0;
        if (angle < 0) angle += 360.0;             // Python's modulo
        angle = -(angle * (Math.PI / 180.0));
        double cos = Math.Round(Math.Cos(angle), 15), sin = Math.Round(Math.Sin(angle), 15);
        double cx = img.Width / 2.0, cy = img.Height / 2.0;
        double a2 = cos * -cx + sin * -cy + 0.0 + cx;
        double a5 = -sin * -cx + cos * -cy + 0.0 + cy;
        Affine(img, cos, sin, a2, -sin, cos, a5, fill, scratch);
    }

    /// <summary><c>img.transform(img.size, AFFINE, (a0 … a5), BICUBIC, fillcolor)</c>: output pixel (x, y) reads the
    /// source at (a0·X + a1·Y + a2, a3·X + a4·Y + a5), X = x + ½, Y = y + ½ (Pillow's affine_transform); a point outside
    /// [0, W) × [0, H) gives the fill colour; inside, Pillow's bicubic_filter (a = −1 cubic, taps clamped to the edge),
    /// clipped to [0, 255] and truncated.</summary>
    public static void Affine(ByteImage img, double a0, double a1, double a2, double a3, double a4, double a5,
        ReadOnlySpan<byte> fill, byte[] scratch)
    {
        int w = img.Width, h = img.Height;
        int stride = w * img.PixelStride;
        Span<int> xs = stackalloc int[4];
        Span<int> ys = stackalloc int[4];
        Span<double> rows = stackalloc double[4];
        fixed (byte* s = scratch)
        {
            var src = CopyTo(img, s, scratch.Length);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    byte* o = img.At(y, x);
                    double X = x + 0.5, Y = y + 0.5;
                    double xin = a0 * X + a1 * Y + a2, yin = a3 * X + a4 * Y + a5;
                    if (xin < 0.0 || xin >= w || yin < 0.0 || yin >= h)
                    {
                        for (int c = 0; c < img.Channels; c++) o[c] = fill[c];
                        continue;
                    }
                    xin -= 0.5;
                    yin -= 0.5;
                    int ix = (int)Math.Floor(xin), iy = (int)Math.Floor(yin);
                    double dx = xin - ix, dy = yin - iy;
                    for (int t = 0; t < 4; t++)
                    {
                        xs[t] = Math.Clamp(ix - 1 + t, 0, w - 1);
                        ys[t] = Math.Clamp(iy - 1 + t, 0, h - 1);   // Pillow repeats the last row read: the same as clamping
                    }
                    for (int c = 0; c < img.Channels; c++)
                    {
                        for (int t = 0; t < 4; t++)
                        {
                            byte* r = src.Data + (long)ys[t] * stride + c;
                            int ps = img.PixelStride;
                            rows[t] = Cubic(r[xs[0] * ps], r[xs[1] * ps], r[xs[2] * ps], r[xs[3] * ps], dx);
                        }
                        double v = Cubic(rows[0], rows[1], rows[2], rows[3], dy);
                        o[c] = v <= 0.0 ? (byte)0 : v >= 255.0 ? (byte)255 : (byte)v;
                    }
                }
        }
    }

    /// <summary>The image copied to <paramref name="dst"/> (the source an op reads while it writes <paramref name="img"/>).</summary>
    static ByteImage CopyTo(ByteImage img, byte* dst, long capacity)
    {
        Buffer.MemoryCopy(img.Data, dst, capacity, (long)img.Pixels * img.PixelStride);
        return img with { Data = dst };
    }

    /// <summary>Pillow's BICUBIC macro (Geometry.c), evaluated in the same order.</summary>
    static double Cubic(double v1, double v2, double v3, double v4, double d)
    {
        double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
        return p1 + d * (p2 + d * (p3 + d * p4));
    }

    /// <summary>Pillow's RGB → L (ITU-R 601-2 in 16-bit fixed point, rounded).</summary>
    static int Luma(byte* p) => (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;

    /// <summary><c>Image.blend(degenerate, image, alpha)</c> for one 8-bit value: in1 + alpha·(in2 − in1) in float32,
    /// clipped to [0, 255] and truncated (Pillow's Blend.c; alpha is a C float there too).</summary>
    static byte Blend(int degenerate, int value, float alpha)
    {
        float t = degenerate + alpha * (value - degenerate);
        return t <= 0f ? (byte)0 : t >= 255f ? (byte)255 : (byte)t;
    }

    static void Map(ByteImage img, int c, ReadOnlySpan<byte> lut)
    {
        byte* p = img.Data + c;
        int n = img.Pixels, stride = img.PixelStride;
        for (int i = 0; i < n; i++, p += stride) *p = lut[*p];
    }

    static void MapAll(ByteImage img, Func<int, int> f)
    {
        Span<byte> lut = stackalloc byte[256];
        for (int i = 0; i < 256; i++) lut[i] = (byte)f(i);
        for (int c = 0; c < img.Channels; c++) Map(img, c, lut);
    }
}
