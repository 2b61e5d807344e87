namespace Mae.MLNet.Input;

/// <summary>timm's RandAugment op list, in its order (<c>_RAND_TRANSFORMS</c> / <c>_RAND_INCREASING_TRANSFORMS</c>).</summary>
internal enum RandAugmentOp
{
    AutoContrast, Equalize, Invert, Rotate, Posterize, Solarize, SolarizeAdd, Color, Contrast, Brightness, Sharpness,
    ShearX, ShearY, TranslateXRel, TranslateYRel,
}

/// <summary>One drawn op of one image: which, whether it applies, and its argument (already through timm's level function).</summary>
internal readonly record struct RandAugmentStep(RandAugmentOp Op, bool Applies, double Argument);

/// <summary>
/// timm's <c>RandAugment.__call__</c> and <c>AugmentOp.__call__</c> for one image, from uniforms in [0, 1): per layer
/// five of them — the op (⌊u·15⌋, numpy's choice with replacement), whether it applies (u ≤ p, as timm skips when
/// random() &gt; p), two for the magnitude's normal (Box–Muller) or one for its uniform, and the sign (negated when
/// u &gt; ½). Then <see cref="PilOps"/> runs the ops on the 8-bit image.
/// </summary>
internal static class RandAugment
{
    public const int OpCount = 15;
    public const int DrawsPerLayer = 5;
    /// <summary>timm's <c>_LEVEL_DENOM</c>: magnitudes are on a 0–10 scale.</summary>
    const double LevelDenominator = 10.0;

    public static int Draws(MaeAugmentationOptions.RandAugmentOptions o) => o.Layers * DrawsPerLayer;

    /// <summary>The steps drawn from <paramref name="u"/> (at least <see cref="Draws"/> uniforms).</summary>
    public static RandAugmentStep[] Plan(MaeAugmentationOptions.RandAugmentOptions o, ReadOnlySpan<double> u)
    {
        if (u.Length < Draws(o)) throw new ArgumentException($"Expected at least {Draws(o)} uniforms; got {u.Length}.", nameof(u));
        var steps = new RandAugmentStep[o.Layers];
        for (int l = 0; l < o.Layers; l++)
        {
            var d = u.Slice(l * DrawsPerLayer, DrawsPerLayer);
            var op = (RandAugmentOp)Math.Min((int)(d[0] * OpCount), OpCount - 1);
            bool applies = !(o.Probability < 1.0 && d[1] > o.Probability);
            double m = o.Magnitude;
            if (double.IsPositiveInfinity(o.MagnitudeStd)) m = d[2] * o.Magnitude;
            else if (o.MagnitudeStd > 0) m += o.MagnitudeStd * MaePlanRandom.Normal(d[2], d[3]);
            m = Math.Max(0.0, Math.Min(m, o.MagnitudeMax));
            steps[l] = new RandAugmentStep(op, applies, Level(op, m, o.Increasing, negate: d[4] > 0.5));
        }
        return steps;
    }

    /// <summary>timm's <c>LEVEL_TO_ARG</c> for the op at magnitude <paramref name="m"/> (0 for the ops that take none).</summary>
    public static double Level(RandAugmentOp op, double m, bool increasing, bool negate)
    {
        double level = m / LevelDenominator;
        double Signed(double v) => negate ? -v : v;
        return op switch
        {
            RandAugmentOp.Rotate => Signed(level * 30.0),
            RandAugmentOp.Posterize => increasing ? 4 - (int)(level * 4) : (int)(level * 4),
            RandAugmentOp.Solarize => increasing ? 256 - Math.Min(256, (int)(level * 256)) : Math.Min(256, (int)(level * 256)),
            RandAugmentOp.SolarizeAdd => Math.Min(128, (int)(level * 110)),
            RandAugmentOp.Color or RandAugmentOp.Contrast or RandAugmentOp.Brightness or RandAugmentOp.Sharpness =>
                increasing ? Math.Max(0.1, 1.0 + Signed(level * 0.9)) : level * 1.8 + 0.1,
            RandAugmentOp.ShearX or RandAugmentOp.ShearY => Signed(level * 0.3),
            RandAugmentOp.TranslateXRel or RandAugmentOp.TranslateYRel => Signed(level * 0.45),
            _ => 0.0,
        };
    }

    /// <summary>The fill colour of the geometric ops: min(255, round(255 · mean)) per channel (timm's <c>img_mean</c>,
    /// Python's round: half to even).</summary>
    public static byte[] Fill(MaeAugmentationOptions a)
    {
        var mean = a.ResolvedNormalization().Mean;
        return Enumerable.Range(0, a.Channels).Select(c => (byte)Math.Clamp(Math.Round(255.0 * mean[c], MidpointRounding.ToEven), 0, 255)).ToArray();
    }

    /// <summary>Runs the applying steps on <paramref name="img"/>; <paramref name="scratch"/> holds at least the image's bytes.</summary>
    public static void Apply(ByteImage img, ReadOnlySpan<RandAugmentStep> steps, ReadOnlySpan<byte> fill, byte[] scratch)
    {
        foreach (var s in steps)
            if (s.Applies) Apply(img, s.Op, s.Argument, fill, scratch);
    }

    /// <summary>One op with its argument, as timm's <c>NAME_TO_OP</c> calls Pillow.</summary>
    public static void Apply(ByteImage img, RandAugmentOp op, double arg, ReadOnlySpan<byte> fill, byte[] scratch)
    {
        switch (op)
        {
            case RandAugmentOp.AutoContrast: PilOps.AutoContrast(img); break;
            case RandAugmentOp.Equalize: PilOps.Equalize(img); break;
            case RandAugmentOp.Invert: PilOps.Invert(img); break;
            case RandAugmentOp.Rotate: PilOps.Rotate(img, arg, fill, scratch); break;
            case RandAugmentOp.Posterize: PilOps.Posterize(img, (int)arg); break;
            case RandAugmentOp.Solarize: PilOps.Solarize(img, (int)arg); break;
            case RandAugmentOp.SolarizeAdd: PilOps.SolarizeAdd(img, (int)arg); break;
            case RandAugmentOp.Color: PilOps.Color(img, arg); break;
            case RandAugmentOp.Contrast: PilOps.Contrast(img, arg); break;
            case RandAugmentOp.Brightness: PilOps.Brightness(img, arg); break;
            case RandAugmentOp.Sharpness: PilOps.Sharpness(img, arg, scratch); break;
            case RandAugmentOp.ShearX: PilOps.Affine(img, 1, arg, 0, 0, 1, 0, fill, scratch); break;
            case RandAugmentOp.ShearY: PilOps.Affine(img, 1, 0, 0, arg, 1, 0, fill, scratch); break;
            case RandAugmentOp.TranslateXRel: PilOps.Affine(img, 1, 0, arg * img.Width, 0, 1, 0, fill, scratch); break;
            case RandAugmentOp.TranslateYRel: PilOps.Affine(img, 1, 0, 0, 0, 1, arg * img.Height, fill, scratch); break;
            default: throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown RandAugment op.");
        }
    }
}
