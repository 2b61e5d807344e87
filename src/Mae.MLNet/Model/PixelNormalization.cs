using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// How pixel values become model inputs: <c>(value · Scale − Mean[c]) / Std[c]</c> per channel — torchvision's
/// <c>ToTensor</c> + <c>Normalize(mean, std)</c> of the reference. The one owner of these numbers: pre-training
/// augmentation, the image decoders, the featurizer and classifier, fine-tuning and the ONNX export all apply this
/// type. The defaults match how the MAE is trained: pixels in [0, 1] (ML.NET's <c>ExtractPixels(scaleImage: 1f / 255)</c>),
/// then ImageNet's per-channel statistics (3 channels) or their grey averages (1 channel).
/// </summary>
public sealed record PixelNormalization
{
    /// <summary>ImageNet RGB mean, the reference's default.</summary>
    public static IReadOnlyList<float> ImageNetMean { get; } = new[] { 0.485f, 0.456f, 0.406f };
    /// <summary>ImageNet RGB standard deviation, the reference's default.</summary>
    public static IReadOnlyList<float> ImageNetStd { get; } = new[] { 0.229f, 0.224f, 0.225f };
    /// <summary>Single-channel default mean: the average of the three ImageNet means (0.449), so a grey image is
    /// shifted like the mean of its RGB counterpart.</summary>
    public const float GreyMean = 0.449f;
    /// <summary>Single-channel default standard deviation: the average of the three ImageNet stds (0.226).</summary>
    public const float GreyStd = 0.226f;

    /// <summary>Multiplies raw values first (1 when the values are already in [0, 1]).</summary>
    public float Scale { get; init; } = 1f;
    public float[] Mean { get; init; } = ImageNetMean.ToArray();
    public float[] Std { get; init; } = ImageNetStd.ToArray();

    /// <summary>The pre-training default: ImageNet's statistics for 3 channels, their grey averages (0.449 / 0.226)
    /// for 1 channel. Other channel counts must be given explicitly.</summary>
    public static PixelNormalization Default(int channels) => channels switch
    {
        3 => new PixelNormalization(),
        1 => new PixelNormalization { Mean = new[] { GreyMean }, Std = new[] { GreyStd } },
        _ => throw new ArgumentException(
            $"There is no default pixel normalisation for {channels} channels (defaults exist for 1 and 3); give Mean and Std per channel."),
    };

    /// <summary>No normalisation: pixels pass unchanged (mean 0, std 1, scale 1).</summary>
    public static PixelNormalization Identity(int channels)
    {
        if (channels < 1) throw new ArgumentOutOfRangeException(nameof(channels), channels, $"Channels must be ≥ 1; got {channels}.");
        return new PixelNormalization { Mean = new float[channels], Std = Enumerable.Repeat(1f, channels).ToArray() };
    }

    /// <summary>True when <see cref="Apply(Tensor)"/> returns its input's values unchanged.</summary>
    public bool IsIdentity => Scale == 1f && Mean.All(m => m == 0f) && Std.All(s => s == 1f);

    /// <summary>Throws <see cref="ArgumentException"/> naming the setting unless there is one finite mean and one
    /// positive finite std per channel and a finite non-zero scale.</summary>
    public PixelNormalization Validate(int channels)
    {
        if (Mean is null || Std is null) throw new ArgumentException("PixelNormalization needs Mean and Std arrays.");
        if (Mean.Length != channels || Std.Length != channels)
            throw new ArgumentException(
                $"PixelNormalization has {Mean.Length} means and {Std.Length} standard deviations; the images have {channels} channels.");
        for (int c = 0; c < channels; c++)
        {
            if (!float.IsFinite(Mean[c])) throw new ArgumentException($"PixelNormalization Mean[{c}] must be finite; got {Mean[c]}.");
            if (!(Std[c] > 0) || float.IsInfinity(Std[c]))
                throw new ArgumentException($"PixelNormalization Std[{c}] must be a positive finite number; got {Std[c]}.");
        }
        if (!float.IsFinite(Scale) || Scale == 0)
            throw new ArgumentException($"PixelNormalization Scale must be a finite, non-zero number; got {Scale}.");
        return this;
    }

    /// <summary>Normalises a batch: [N, C, H, W] floating point → the same shape, dtype and device
    /// (mean and std are cast to the batch's dtype, so float64 input is normalised in float64).</summary>
    public Tensor Apply(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.shape[1] != Mean.Length || !images.is_floating_point())
            throw new ArgumentException(
                $"Expected floating-point images [N, {Mean.Length}, H, W] to normalise; got {images.dtype} [{string.Join(", ", images.shape)}].", nameof(images));
        using var scope = NewDisposeScope();
        int c = Mean.Length;
        var x = Scale == 1f ? images : images.Times(Scale);
        var mean = tensor(Mean, new long[] { 1, c, 1, 1 }).to(images.dtype, images.device);
        var std = tensor(Std, new long[] { 1, c, 1, 1 }).to(images.dtype, images.device);
        return ((x - mean) / std).MoveToOuterDisposeScope();
    }

    /// <summary>One value of channel <paramref name="channel"/>, in float32 as <see cref="Apply(Tensor)"/> computes it.</summary>
    public float Apply(float value, int channel) => ((Scale == 1f ? value : value * Scale) - Mean[channel]) / Std[channel];
}
