namespace Mae.MLNet;

/// <summary>
/// How raw pixel values become model inputs: <c>(value · Scale − Mean[c]) / Std[c]</c> per channel. The defaults
/// match how the MAE is trained: pixels in [0, 1] (ML.NET's <c>ExtractPixels(scaleImage: 1f / 255)</c>), then
/// ImageNet's per-channel statistics for 3 channels, or mean 0.5 / std 0.5 for other channel counts.
/// </summary>
public sealed record PixelNormalization
{
    public static readonly float[] ImageNetMean = { 0.485f, 0.456f, 0.406f };
    public static readonly float[] ImageNetStd = { 0.229f, 0.224f, 0.225f };

    /// <summary>Multiplies raw values first (1 when the column already holds [0, 1] values).</summary>
    public float Scale { get; init; } = 1f;
    public float[] Mean { get; init; } = ImageNetMean;
    public float[] Std { get; init; } = ImageNetStd;

    /// <summary>The pre-training default (as <see cref="Training.Augmentation.MaeAugmentationOptions"/>): ImageNet's
    /// statistics for 3 channels, their grey averages (0.449 / 0.226) for 1 channel. Other channel counts must be
    /// given explicitly.</summary>
    public static PixelNormalization Default(int channels) => channels switch
    {
        3 => new PixelNormalization(),
        1 => new PixelNormalization
        {
            Mean = new[] { Training.Augmentation.MaeAugmentationOptions.GreyMean },
            Std = new[] { Training.Augmentation.MaeAugmentationOptions.GreyStd },
        },
        _ => throw new ArgumentException(
            $"There is no default pixel normalisation for {channels} channels; set Normalization (Mean and Std per channel)."),
    };

    public PixelNormalization Validate(int channels)
    {
        if (Mean is null || Std is null) throw new ArgumentException("PixelNormalization needs Mean and Std arrays.");
        if (Mean.Length != channels || Std.Length != channels)
            throw new ArgumentException(
                $"PixelNormalization has {Mean.Length} means and {Std.Length} standard deviations; the model has {channels} channels.");
        if (Std.Any(s => !(s > 0) || float.IsInfinity(s)))
            throw new ArgumentException($"Every Std must be a positive finite number; got [{string.Join(", ", Std)}].");
        if (Mean.Any(m => !float.IsFinite(m)) || !float.IsFinite(Scale) || Scale == 0)
            throw new ArgumentException("Mean values and Scale must be finite (and Scale non-zero).");
        return this;
    }
}
