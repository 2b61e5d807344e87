using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>A crop rectangle in pixels: rows [Top, Top + Height), columns [Left, Left + Width).</summary>
internal readonly record struct CropBox(int Top, int Left, int Height, int Width)
{
    /// <summary>The whole image.</summary>
    public static CropBox Full(int height, int width) => new(0, 0, height, width);
}

/// <summary>
/// torchvision's <c>RandomResizedCrop.get_params</c>, per sample, from uniforms drawn with libtorch's global CPU
/// generator (so a checkpoint of <c>torch.random</c>'s state covers the augmentation too).
/// <para>Each sample consumes exactly <see cref="DrawsPerSample"/> uniforms whatever happens: for each of the 10
/// attempts one for the area fraction U(scale) and one for the log aspect ratio U(log r_min, log r_max); then one
/// each for the top and left offsets and one for the flip. An attempt gives w = round(√(area·ratio)),
/// h = round(√(area/ratio)) (Python's round: half to even) and is accepted when 0 &lt; w ≤ W and 0 &lt; h ≤ H; the
/// offsets are i = ⌊u·(H − h + 1)⌋, j = ⌊u·(W − w + 1)⌋ (torchvision's randint(0, H − h + 1)). If no attempt
/// fits, the central crop with the aspect ratio clamped to the ratio range is used.</para>
/// </summary>
internal static class RandomResizedCropSampler
{
    public const int Attempts = 10;
    /// <summary>Uniforms consumed per sample: 2 per attempt, top, left, flip.</summary>
    public const int DrawsPerSample = 2 * Attempts + 3;

    /// <summary>Draws crop boxes and flips for <paramref name="count"/> images of <paramref name="height"/> ×
    /// <paramref name="width"/> with one libtorch call (<c>rand([count, 23], float64)</c> on the CPU generator).</summary>
    public static (CropBox[] Boxes, bool[] Flips) Sample(int count, int height, int width, MaeAugmentationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "count must be ≥ 0.");
        if (height < 1 || width < 1)
            throw new ArgumentException($"Image size must be at least 1×1; got {height}×{width}.", nameof(height));
        var boxes = new CropBox[count];
        var flips = new bool[count];
        if (count == 0) return (boxes, flips);
        double[] u;
        using (var draws = rand(new long[] { count, DrawsPerSample }, dtype: ScalarType.Float64, device: CPU))
            u = draws.data<double>().ToArray();
        for (int n = 0; n < count; n++)
        {
            var s = new ReadOnlySpan<double>(u, n * DrawsPerSample, DrawsPerSample);
            boxes[n] = options.RandomResizedCrop
                ? FromUniforms(height, width, options.ScaleMin, options.ScaleMax, options.RatioMin, options.RatioMax, s)
                : CropBox.Full(height, width);
            flips[n] = s[DrawsPerSample - 1] < options.HorizontalFlipProbability;
        }
        return (boxes, flips);
    }

    /// <summary>The crop box for one sample from its uniforms in [0, 1) (at least 2·10 + 2 of them).</summary>
    public static CropBox FromUniforms(int height, int width, double scaleMin, double scaleMax, double ratioMin, double ratioMax,
        ReadOnlySpan<double> u)
    {
        if (u.Length < 2 * Attempts + 2)
            throw new ArgumentException($"Expected at least {2 * Attempts + 2} uniforms; got {u.Length}.", nameof(u));
        double area = (double)height * width;
        double logMin = Math.Log(ratioMin), logMax = Math.Log(ratioMax);
        for (int a = 0; a < Attempts; a++)
        {
            double targetArea = area * (scaleMin + u[2 * a] * (scaleMax - scaleMin));
            double aspect = Math.Exp(logMin + u[2 * a + 1] * (logMax - logMin));
            int w = (int)Math.Round(Math.Sqrt(targetArea * aspect), MidpointRounding.ToEven);
            int h = (int)Math.Round(Math.Sqrt(targetArea / aspect), MidpointRounding.ToEven);
            if (w > 0 && w <= width && h > 0 && h <= height)
            {
                int i = Math.Min((int)Math.Floor(u[2 * Attempts] * (height - h + 1)), height - h);
                int j = Math.Min((int)Math.Floor(u[2 * Attempts + 1] * (width - w + 1)), width - w);
                return new CropBox(i, j, h, w);
            }
        }
        // Fallback: central crop, aspect ratio clamped to [ratioMin, ratioMax].
        double inRatio = (double)width / height;
        int cw, ch;
        if (inRatio < ratioMin)
        {
            cw = width;
            ch = (int)Math.Round(cw / ratioMin, MidpointRounding.ToEven);
        }
        else if (inRatio > ratioMax)
        {
            ch = height;
            cw = (int)Math.Round(ch * ratioMax, MidpointRounding.ToEven);
        }
        else
        {
            cw = width;
            ch = height;
        }
        return new CropBox((height - ch) / 2, (width - cw) / 2, ch, cw);
    }
}
