using Mae.MLNet.Model;
namespace Mae.MLNet.Input;

/// <summary>How <see cref="MaePretrainAugmentation"/> resamples the crop boxes to the output size.</summary>
internal enum CropResampler
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
/// <c>ToTensor()</c>, <c>Normalize(mean, std)</c>. Input pixels are expected in [0, 1] (ToTensor units). The crop and
/// flip are this type's; the normalisation is a <see cref="PixelNormalization"/>. For fine-tuning, the reference's
/// timm transform adds <see cref="RandAugment"/> (after the flip, on the 8-bit crop) and random erasing (after the
/// normalisation); both are off by default here and apply to training images only.
/// </summary>
public sealed partial class MaeAugmentationOptions
{

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
    /// <summary>The <c>Normalize(mean, std)</c> after the crop; null = <see cref="PixelNormalization.Default"/> for
    /// <see cref="Channels"/> (ImageNet for 3, grey for 1). <see cref="PixelNormalization.Identity"/> keeps the output in
    /// [0, 1]. Its <see cref="PixelNormalization.Scale"/> must be 1: the crop works on [0, 1] pixels.</summary>
    public PixelNormalization? Normalization { get; set; }
    /// <summary>Clamp the resampled pixels to [0, 1] before normalising, as PIL's 8-bit output is clamped. Default true.</summary>
    public bool ClampToUnitRange { get; set; } = true;
    /// <summary>timm's RandAugment on the 8-bit crop (the fine-tuning recipe's <c>--aa rand-m9-mstd0.5-inc1</c>); null
    /// (default) = none. Needs 1 or 3 channels. On the tensor path the crop is rounded to 8 bits first, as PIL's is.</summary>
    public RandAugmentOptions? RandAugment { get; set; }
    /// <summary>timm's random erasing (<c>--reprob</c>, mode pixel, one box) on the normalised image: the probability per
    /// image; 0 (default) = off. The reference fine-tunes with 0.25.</summary>
    public double RandomErasingProbability { get; set; }
    /// <summary>How the crop is resampled; see <see cref="CropResampler"/>. Internal: the benchmark's comparison of the
    /// two paths; users get the reference's PIL bicubic.</summary>
    internal CropResampler Resampler { get; set; } = CropResampler.SeparablePilBicubic;

    /// <summary>The normalisation that applies: <see cref="Normalization"/> or the default for <see cref="Channels"/>.</summary>
    public PixelNormalization ResolvedNormalization() => Normalization ?? PixelNormalization.Default(Channels);

    /// <summary>A copy with another normalisation (the crop and flip settings kept).</summary>
    public MaeAugmentationOptions With(PixelNormalization normalization)
    {
        var copy = (MaeAugmentationOptions)MemberwiseClone();
        copy.Normalization = normalization;
        return copy;
    }

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
        if (RandAugment is not null)
        {
            if (Channels is not (1 or 3))
                throw new ArgumentException($"RandAugment works on grey or RGB images (Pillow's L and RGB); Channels is {Channels}.", nameof(RandAugment));
            RandAugment.Validate();
        }
        if (!(RandomErasingProbability >= 0 && RandomErasingProbability <= 1))
            throw new ArgumentOutOfRangeException(nameof(RandomErasingProbability), RandomErasingProbability,
                $"RandomErasingProbability must be in [0, 1]; got {RandomErasingProbability}.");
        if (!Enum.IsDefined(Resampler))
            throw new ArgumentOutOfRangeException(nameof(Resampler), Resampler, "Expected SeparablePilBicubic or PerSampleInterpolate.");
        PixelNormalization normalization;
        try { normalization = ResolvedNormalization().Validate(Channels); }
        catch (ArgumentException e) { throw new ArgumentException($"{nameof(Normalization)}: {e.Message}", nameof(Normalization), e); }
        if (normalization.Scale != 1f)
            throw new ArgumentException(
                $"{nameof(Normalization)}.Scale must be 1 for the augmentation, which crops [0, 1] pixels; got {normalization.Scale}. Scale the pixels when reading them instead.",
                nameof(Normalization));
        return this;
    }
}
