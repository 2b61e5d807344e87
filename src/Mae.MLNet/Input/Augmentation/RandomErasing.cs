namespace Mae.MLNet.Input;

/// <summary>
/// timm's <c>RandomErasing</c> as the MAE fine-tuning recipe configures it (<c>--reprob 0.25 --remode pixel
/// --recount 1</c>): applied to the normalised image; with the probability, up to 10 attempts draw a target area
/// U(0.02, 1/3) · H·W and a log aspect ratio U(log 0.3, log 1/0.3), h = round(√(area·ratio)), w = round(√(area/ratio))
/// (half to even, as Python's round); the first with h &lt; H and w &lt; W is placed at top = randint(0, H − h),
/// left = randint(0, W − w) and filled with per-pixel N(0, 1) noise in every channel. Uniforms per image:
/// <see cref="Draws"/> (1 + 4 per attempt + 1 seeding the noise).
/// </summary>
internal static unsafe class RandomErasing
{
    public const int Attempts = 10;
    public const int Draws = 1 + 4 * Attempts + 1;
    const double MinArea = 0.02, MaxArea = 1.0 / 3.0, MinAspect = 0.3;

    /// <summary>The erased box for an image of <paramref name="height"/> × <paramref name="width"/>, or null (not applied,
    /// or no attempt fitted).</summary>
    public static CropBox? Box(double probability, int height, int width, ReadOnlySpan<double> u)
    {
        if (u.Length < Draws) throw new ArgumentException($"Expected at least {Draws} uniforms; got {u.Length}.", nameof(u));
        if (u[0] > probability) return null;   // timm: `if random.random() > self.probability: return`
        double area = (double)height * width, logMin = Math.Log(MinAspect), logMax = Math.Log(1.0 / MinAspect);
        for (int a = 0; a < Attempts; a++)
        {
            var d = u.Slice(1 + 4 * a, 4);
            double target = (MinArea + (MaxArea - MinArea) * d[0]) * area;
            double ratio = Math.Exp(logMin + (logMax - logMin) * d[1]);
            int h = (int)Math.Round(Math.Sqrt(target * ratio), MidpointRounding.ToEven);
            int w = (int)Math.Round(Math.Sqrt(target / ratio), MidpointRounding.ToEven);
            if (w < width && h < height)
                return new CropBox((int)(d[2] * (height - h + 1)), (int)(d[3] * (width - w + 1)), h, w);
        }
        return null;
    }

    /// <summary>Erases the box drawn from <paramref name="u"/> in <paramref name="image"/> ([C, H, W] float32, normalised).</summary>
    public static void Apply(float* image, int channels, int height, int width, double probability, ReadOnlySpan<double> u)
    {
        if (Box(probability, height, width, u) is not { } b) return;
        ulong state = (ulong)(u[Draws - 1] * (1UL << 53)) ^ 0x9E3779B97F4A7C15UL;
        for (int c = 0; c < channels; c++)
            for (int y = b.Top; y < b.Top + b.Height; y++)
            {
                float* row = image + ((long)c * height + y) * width;
                for (int x = b.Left; x < b.Left + b.Width; x++)
                    row[x] = (float)MaePlanRandom.Normal(MaePlanRandom.NextUniform(ref state), MaePlanRandom.NextUniform(ref state));
            }
    }
}
