namespace Mae.MLNet.Input;

/// <summary>
/// The resampling taps of one image axis exactly as Pillow's <c>precompute_coeffs</c> computes them for
/// <c>Image.resize(..., BICUBIC)</c>, which torchvision's PIL path uses for <c>interpolation=3</c>: output pixel k
/// centres at c = in0 + (k + ½)·scale with scale = (in1 − in0)/outSize; the filter is widened by
/// s = max(scale, 1) (antialiasing on downscale) and spans ±2s; the taps are the input pixels
/// p ∈ [⌊c − 2s + ½⌋, ⌊c + 2s + ½⌋) ∩ [0, inSize), weighted f((p − c + ½)/s) with the bicubic f (a = −0.5) and
/// divided by their sum. <see cref="Fixed"/> holds them as Pillow's 8-bit path does: rounded to 22 fractional bits.
/// </summary>
internal sealed class PilAxis
{
    /// <summary>Pillow's <c>PRECISION_BITS</c> for 8-bit images (32 − 8 − 2).</summary>
    public const int PrecisionBits = 22;
    /// <summary>Pillow's bicubic support (taps ±2 at scale 1).</summary>
    const double Support = 2.0;

    public int OutSize { get; }
    /// <summary>Capacity per output (Pillow's ksize): ⌈support⌉·2 + 1.</summary>
    public int KSize { get; }
    /// <summary>First input pixel of each output.</summary>
    public int[] First { get; }
    /// <summary>Number of taps of each output.</summary>
    public int[] Count { get; }
    /// <summary>Normalised weights, [OutSize × KSize] (unused slots 0).</summary>
    public double[] Weights { get; }
    /// <summary>Weights in Pillow's fixed point: round-half-away(w · 2²²).</summary>
    public int[] Fixed { get; }

    PilAxis(int outSize, int kSize)
    {
        OutSize = outSize;
        KSize = kSize;
        First = new int[outSize];
        Count = new int[outSize];
        Weights = new double[outSize * kSize];
        Fixed = new int[outSize * kSize];
    }

    /// <summary>Pillow's bicubic kernel, a = −0.5.</summary>
    public static double Bicubic(double x)
    {
        const double a = MaePretrainAugmentation.PilBicubicA;
        if (x < 0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
        return 0.0;
    }

    /// <summary>The taps resampling the span [<paramref name="in0"/>, <paramref name="in1"/>) of an axis of
    /// <paramref name="inSize"/> pixels to <paramref name="outSize"/> pixels.</summary>
    public static PilAxis Compute(double in0, double in1, int inSize, int outSize) => Compute(in0, in1, inSize, outSize, 0, outSize);

    /// <summary>The outputs [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) of the
    /// resampling of [<paramref name="in0"/>, <paramref name="in1"/>) to <paramref name="outSize"/> pixels — the same
    /// taps as outputs <paramref name="start"/> … of <see cref="Compute(double, double, int, int)"/>, but computed for
    /// the window only: the evaluation transform's centre crop of a resize whose long side can be billions of pixels for an
    /// image of extreme aspect ratio (a 1 × 60 000 header resized to 256 px short side is 15 M px long) costs the
    /// window's taps, not the whole grid's.</summary>
    public static PilAxis Compute(double in0, double in1, int inSize, long outSize, long start, int length)
    {
        if (inSize < 1 || outSize < 1)
            throw new ArgumentOutOfRangeException(nameof(inSize), $"Sizes must be ≥ 1; got in {inSize}, out {outSize}.");
        if (start < 0 || length < 1 || start + length > outSize)
            throw new ArgumentException($"The window [{start}, {start + length}) does not lie inside [0, {outSize}).", nameof(start));
        if (!(in0 >= 0 && in1 > in0 && in1 <= inSize))
            throw new ArgumentException($"The span [{in0}, {in1}) does not lie inside [0, {inSize}) with a positive length.", nameof(in0));
        // Pillow passes the box as C floats: the span length is a float difference.
        double scale = (double)((float)in1 - (float)in0) / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = Support * filterScale;
        var axis = new PilAxis(length, (int)Math.Ceiling(support) * 2 + 1);
        double ss = 1.0 / filterScale;
        for (int xx = 0; xx < length; xx++)
        {
            double center = (float)in0 + (start + xx + 0.5) * scale;
            int xmin = Math.Max((int)(center - support + 0.5), 0);
            int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            int k = xx * axis.KSize;
            double ww = 0;
            for (int x = 0; x < xmax; x++)
            {
                double w = Bicubic((x + xmin - center + 0.5) * ss);
                axis.Weights[k + x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++)
            {
                if (ww != 0.0) axis.Weights[k + x] /= ww;
                double v = axis.Weights[k + x] * (1 << PrecisionBits);
                axis.Fixed[k + x] = (int)(v < 0 ? v - 0.5 : v + 0.5);
            }
            axis.First[xx] = xmin;
            axis.Count[xx] = Math.Max(xmax, 0);
        }
        return axis;
    }

    /// <summary>Input pixels this axis reads: [first, end).</summary>
    public (int First, int End) InputRange()
    {
        int first = int.MaxValue, end = 0;
        for (int k = 0; k < OutSize; k++)
        {
            if (Count[k] == 0) continue;
            first = Math.Min(first, First[k]);
            end = Math.Max(end, First[k] + Count[k]);
        }
        return first > end ? (0, 0) : (first, end);
    }
}
