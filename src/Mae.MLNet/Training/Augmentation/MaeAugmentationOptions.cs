namespace Mae.MLNet.Training.Augmentation;

/// <summary>How <see cref="MaePretrainAugmentation"/> resamples the crop boxes to the output size.</summary>
public enum CropResampler
{
    /// <summary>
    /// Default. Separable resampling as two batched matrix products (rows, then columns) with per-sample weight
    /// matrices built on the device from PIL's bicubic filter (a = −0.5, support widened by the scale factor on
    /// downscale, i.e. antialiased, taps restricted to the crop and renormalised). This is the filter torchvision's
    /// PIL path uses for <c>interpolation=3</c>; it differs from PIL only in that PIL rounds to 8 bits between the
    /// two passes. Faster than the per-sample path at batch 64 / 32 px (see docs/augmentation.md).
    /// (A batched <c>affine_grid</c> + <c>grid_sample</c> was considered: TorchSharp 0.107 exposes only its nearest and
    /// bilinear modes, so it cannot give the reference's bicubic.)
    /// </summary>
    SeparablePilBicubic,
    /// <summary>Per-sample crop + <c>interpolate(mode: bicubic, align_corners: false, antialias: true)</c>: torchvision's
    /// tensor path (a = −0.75, taps clamped at the crop edge). One libtorch call per sample.</summary>
    PerSampleInterpolate,
}

/// <summary>
/// The reference's pre-training augmentation (facebookresearch/mae <c>main_pretrain.py</c>):
/// <c>RandomResizedCrop(size, scale=(0.2, 1.0), interpolation=bicubic)</c>, <c>RandomHorizontalFlip()</c>,
/// <c>ToTensor()</c>, <c>Normalize(mean, std)</c>. Input pixels are expected in [0, 1] (ToTensor units).
/// </summary>
public sealed class MaeAugmentationOptions
{
    /// <summary>ImageNet RGB mean, the reference's default.</summary>
    public static readonly IReadOnlyList<float> ImageNetMean = new[] { 0.485f, 0.456f, 0.406f };
    /// <summary>ImageNet RGB standard deviation, the reference's default.</summary>
    public static readonly IReadOnlyList<float> ImageNetStd = new[] { 0.229f, 0.224f, 0.225f };
    /// <summary>Single-channel default mean: the average of the three ImageNet means (0.449), so a grey image is
    /// shifted like the mean of its RGB counterpart.</summary>
    public const float GreyMean = 0.449f;
    /// <summary>Single-channel default standard deviation: the average of the three ImageNet stds (0.226).</summary>
    public const float GreyStd = 0.226f;

    /// <summary>Side of the square output crop (the model's image size). Default 224.</summary>
    public int OutputSize { get; set; } = 224;
    /// <summary>Lower bound of the crop area as a fraction of the image area. Default 0.2 (the MAE recipe).</summary>
    public double ScaleMin { get; set; } = 0.2;
    /// <summary>Upper bound of the crop area fraction. Default 1.0.</summary>
    public double ScaleMax { get; set; } = 1.0;
    /// <summary>Lower bound of the crop aspect ratio w/h. Default 3/4.</summary>
    public double RatioMin { get; set; } = 3.0 / 4.0;
    /// <summary>Upper bound of the crop aspect ratio w/h. Default 4/3.</summary>
    public double RatioMax { get; set; } = 4.0 / 3.0;
    /// <summary>Probability of a horizontal flip per sample. Default 0.5; 0 disables flipping.</summary>
    public double HorizontalFlipProbability { get; set; } = 0.5;
    /// <summary>When false the crop step is skipped (the image must then already be OutputSize × OutputSize).</summary>
    public bool RandomResizedCrop { get; set; } = true;
    /// <summary>Number of channels of the images (1 or 3 usually). Default 3.</summary>
    public int Channels { get; set; } = 3;
    /// <summary>Per-channel mean; null = ImageNet for 3 channels, <see cref="GreyMean"/> for 1 channel.</summary>
    public float[]? Mean { get; set; }
    /// <summary>Per-channel std; null = ImageNet for 3 channels, <see cref="GreyStd"/> for 1 channel.</summary>
    public float[]? Std { get; set; }
    /// <summary>When false, <c>Normalize(mean, std)</c> is skipped and the output stays in [0, 1].</summary>
    public bool Normalize { get; set; } = true;
    /// <summary>Clamp the resampled pixels to [0, 1] before normalising, as PIL's 8-bit output is clamped. Default true.</summary>
    public bool ClampToUnitRange { get; set; } = true;
    /// <summary>How the crop is resampled; see <see cref="CropResampler"/>.</summary>
    public CropResampler Resampler { get; set; } = CropResampler.SeparablePilBicubic;

    /// <summary>The mean that applies: <see cref="Mean"/> or the default for <see cref="Channels"/>.</summary>
    public float[] ResolvedMean() => Mean?.ToArray() ?? DefaultFor(Channels, ImageNetMean, GreyMean, nameof(Mean));
    /// <summary>The std that applies: <see cref="Std"/> or the default for <see cref="Channels"/>.</summary>
    public float[] ResolvedStd() => Std?.ToArray() ?? DefaultFor(Channels, ImageNetStd, GreyStd, nameof(Std));

    private static float[] DefaultFor(int channels, IReadOnlyList<float> rgb, float grey, string name) => channels switch
    {
        3 => rgb.ToArray(),
        1 => new[] { grey },
        _ => throw new ArgumentException(
            $"{name} has no default for {channels} channels (defaults exist for 1 and 3); set {name} to {channels} values.", name),
    };

    /// <summary>Checks every option and returns this instance; throws an <see cref="ArgumentException"/> naming the
    /// option, the expected range and the actual value.</summary>
    public MaeAugmentationOptions Validate()
    {
        if (OutputSize < 1)
            throw new ArgumentOutOfRangeException(nameof(OutputSize), OutputSize, $"OutputSize must be ≥ 1; got {OutputSize}.");
        if (!(ScaleMin > 0 && ScaleMin <= 1))
            throw new ArgumentOutOfRangeException(nameof(ScaleMin), ScaleMin, $"ScaleMin must be in (0, 1]; got {ScaleMin}.");
        if (!(ScaleMax > 0 && ScaleMax <= 1))
            throw new ArgumentOutOfRangeException(nameof(ScaleMax), ScaleMax, $"ScaleMax must be in (0, 1]; got {ScaleMax}.");
        if (ScaleMin > ScaleMax)
            throw new ArgumentException($"ScaleMin ({ScaleMin}) must not exceed ScaleMax ({ScaleMax}).", nameof(ScaleMin));
        if (!(RatioMin > 0 && double.IsFinite(RatioMin)))
            throw new ArgumentOutOfRangeException(nameof(RatioMin), RatioMin, $"RatioMin must be a finite number > 0; got {RatioMin}.");
        if (!(RatioMax > 0 && double.IsFinite(RatioMax)))
            throw new ArgumentOutOfRangeException(nameof(RatioMax), RatioMax, $"RatioMax must be a finite number > 0; got {RatioMax}.");
        if (RatioMin > RatioMax)
            throw new ArgumentException($"RatioMin ({RatioMin}) must not exceed RatioMax ({RatioMax}).", nameof(RatioMin));
        if (!(HorizontalFlipProbability >= 0 && HorizontalFlipProbability <= 1))
            throw new ArgumentOutOfRangeException(nameof(HorizontalFlipProbability), HorizontalFlipProbability,
                $"HorizontalFlipProbability must be in [0, 1]; got {HorizontalFlipProbability}.");
        if (Channels < 1)
            throw new ArgumentOutOfRangeException(nameof(Channels), Channels, $"Channels must be ≥ 1; got {Channels}.");
        if (!Enum.IsDefined(Resampler))
            throw new ArgumentOutOfRangeException(nameof(Resampler), Resampler, "Expected SeparablePilBicubic or PerSampleInterpolate.");
        var mean = ResolvedMean();
        var std = ResolvedStd();
        if (mean.Length != Channels)
            throw new ArgumentException($"Mean has {mean.Length} values; expected one per channel ({Channels}).", nameof(Mean));
        if (std.Length != Channels)
            throw new ArgumentException($"Std has {std.Length} values; expected one per channel ({Channels}).", nameof(Std));
        for (int c = 0; c < Channels; c++)
        {
            if (!float.IsFinite(mean[c]))
                throw new ArgumentException($"Mean[{c}] must be finite; got {mean[c]}.", nameof(Mean));
            if (!(std[c] > 0 && float.IsFinite(std[c])))
                throw new ArgumentException($"Std[{c}] must be a finite number > 0; got {std[c]}.", nameof(Std));
        }
        return this;
    }
}
