namespace Mae.MLNet.Model;

/// <summary>
/// Architecture of a ConvNeXt V2 (Woo et al., CVPR 2023, "Co-designing and Scaling ConvNets with Masked
/// Autoencoders"): a 4×4 stride-4 stem, four stages of blocks (depthwise 7×7 conv → LayerNorm → pointwise 4× MLP with
/// GELU and Global Response Normalization → residual, no layer scale), 2×2 stride-2 downsampling between stages, and
/// a head of global average pooling → LayerNorm → Linear. Mirrors timm's <c>convnextv2_*</c> constructors
/// (<c>timm/models/convnext.py</c>), whose parameter names the model keeps so timm's state dicts load as they are; the
/// FCMAE pre-training settings (<see cref="DecoderEmbedDim"/>, <see cref="MaskPatchSize"/>, ...) follow the official
/// <c>models/fcmae.py</c>.
/// </summary>
public sealed record ConvNextV2Config
{
    /// <summary>Training and featurizing resolution (the encoder itself takes any multiple of <see cref="TotalStride"/>).</summary>
    public int ImageSize { get; init; } = 224;
    public int InChannels { get; init; } = 3;
    /// <summary>Blocks per stage (four stages).</summary>
    public IReadOnlyList<int> Depths { get; init; } = new[] { 3, 3, 9, 3 };
    /// <summary>Channels per stage (four stages).</summary>
    public IReadOnlyList<int> Dims { get; init; } = new[] { 96, 192, 384, 768 };
    /// <summary>Stem patch size (timm's <c>patch_size</c>, 4).</summary>
    public int StemPatchSize { get; init; } = 4;
    /// <summary>Hidden width of each block's MLP over its channels (4 in every preset).</summary>
    public int MlpRatio { get; init; } = 4;
    /// <summary>timm's <c>conv_mlp</c>: the block MLP's weights are 1×1 convolutions, <c>[out, in, 1, 1]</c>, as timm's
    /// atto … nano presets store them (tiny and larger store <c>[out, in]</c> Linear weights). The arithmetic is the same
    /// per pixel either way; the flag only keeps the state-dict shapes timm's files have.</summary>
    public bool ConvMlp { get; init; }
    /// <summary>Epsilon of every LayerNorm (1e-6 in timm's and the official code).</summary>
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>FCMAE: side of the masked square in input pixels; the mask is drawn at the last stage's resolution,
    /// so it must equal <see cref="TotalStride"/> (32, the official <c>patch_size</c>).</summary>
    public int MaskPatchSize => TotalStride;
    /// <summary>FCMAE decoder width (official <c>decoder_embed_dim</c>, 512).</summary>
    public int DecoderEmbedDim { get; init; } = 512;
    /// <summary>FCMAE decoder blocks (official <c>decoder_depth</c>, 1).</summary>
    public int DecoderDepth { get; init; } = 1;
    /// <summary>FCMAE loss on per-patch normalised pixels (the official <c>--norm_pix_loss</c>; on in every command of its
    /// TRAINING.md, off in the bare constructor).</summary>
    public bool NormPixLoss { get; init; } = true;

    /// <summary>Downsampling from input to the last stage: stem × 2³.</summary>
    public int TotalStride => StemPatchSize * 8;
    /// <summary>Channels of the last stage (the pooled feature width).</summary>
    public int NumFeatures => Dims[^1];
    /// <summary>Width of a featurizer's output that pools the last <paramref name="stages"/> stages (1–4;
    /// <see cref="ConvNextV2.ForwardFeatures(TorchSharp.torch.Tensor, int)"/>): the sum of their channels.</summary>
    public int FeatureWidth(int stages)
    {
        ConvNextV2.CheckStages(stages, nameof(stages));
        return Dims.Skip(4 - stages).Sum();
    }
    /// <summary>FCMAE: mask cells per side at <see cref="ImageSize"/>.</summary>
    public int MaskGridSize => ImageSize / MaskPatchSize;
    /// <summary>FCMAE: values per masked patch, p²·C (the decoder's prediction width).</summary>
    public int PatchDim => MaskPatchSize * MaskPatchSize * InChannels;

    /// <summary>ConvNeXt V2-Atto (timm <c>convnextv2_atto</c>, 3.7 M parameters with a 1000-class head).</summary>
    public static ConvNextV2Config Atto => new() { Depths = new[] { 2, 2, 6, 2 }, Dims = new[] { 40, 80, 160, 320 }, ConvMlp = true };
    /// <summary>ConvNeXt V2-Femto (timm <c>convnextv2_femto</c>, 5.2 M).</summary>
    public static ConvNextV2Config Femto => new() { Depths = new[] { 2, 2, 6, 2 }, Dims = new[] { 48, 96, 192, 384 }, ConvMlp = true };
    /// <summary>ConvNeXt V2-Pico (timm <c>convnextv2_pico</c>, 9.1 M).</summary>
    public static ConvNextV2Config Pico => new() { Depths = new[] { 2, 2, 6, 2 }, Dims = new[] { 64, 128, 256, 512 }, ConvMlp = true };
    /// <summary>ConvNeXt V2-Nano (timm <c>convnextv2_nano</c>, 15.6 M).</summary>
    public static ConvNextV2Config Nano => new() { Depths = new[] { 2, 2, 8, 2 }, Dims = new[] { 80, 160, 320, 640 }, ConvMlp = true };
    /// <summary>ConvNeXt V2-Tiny (timm <c>convnextv2_tiny</c>, 28.6 M).</summary>
    public static ConvNextV2Config Tiny => new() { Depths = new[] { 3, 3, 9, 3 }, Dims = new[] { 96, 192, 384, 768 } };
    /// <summary>ConvNeXt V2-Base (timm <c>convnextv2_base</c>, 88.7 M).</summary>
    public static ConvNextV2Config Base => new() { Depths = new[] { 3, 3, 27, 3 }, Dims = new[] { 128, 256, 512, 1024 } };
    /// <summary>ConvNeXt V2-Large (timm <c>convnextv2_large</c>, 197.96 M).</summary>
    public static ConvNextV2Config Large => new() { Depths = new[] { 3, 3, 27, 3 }, Dims = new[] { 192, 384, 768, 1536 } };
    /// <summary>ConvNeXt V2-Huge (timm <c>convnextv2_huge</c>, 660.29 M).</summary>
    public static ConvNextV2Config Huge => new() { Depths = new[] { 3, 3, 27, 3 }, Dims = new[] { 352, 704, 1408, 2816 } };

    /// <summary>The names <see cref="Preset"/> knows.</summary>
    public static IReadOnlyList<string> PresetNames { get; } = new[]
    {
        "convnextv2-atto", "convnextv2-femto", "convnextv2-pico", "convnextv2-nano", "convnextv2-tiny", "convnextv2-base",
        "convnextv2-large", "convnextv2-huge",
    };

    /// <summary>Looks a preset up by name: <c>convnextv2-atto</c> … <c>convnextv2-huge</c>, or timm's spelling
    /// <c>convnextv2_atto</c> (case-insensitive; a timm tag such as <c>.fcmae</c> is ignored).</summary>
    public static ConvNextV2Config Preset(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string key = name.Split('.')[0].ToLowerInvariant().Replace('_', '-');
        return key switch
        {
            "convnextv2-atto" => Atto, "convnextv2-femto" => Femto, "convnextv2-pico" => Pico, "convnextv2-nano" => Nano,
            "convnextv2-tiny" => Tiny, "convnextv2-base" => Base, "convnextv2-large" => Large, "convnextv2-huge" => Huge,
            _ => throw new ArgumentException($"Unknown ConvNeXt V2 preset '{name}'. Expected one of: {string.Join(", ", PresetNames)}.", nameof(name)),
        };
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first inconsistent setting.</summary>
    public ConvNextV2Config Validate()
    {
        if (Depths is null || Depths.Count != 4 || Depths.Any(d => d < 1))
            throw new ArgumentException($"Depths must be four positive block counts (one per stage); got [{string.Join(", ", Depths ?? Array.Empty<int>())}].");
        if (Dims is null || Dims.Count != 4 || Dims.Any(d => d < 1))
            throw new ArgumentException($"Dims must be four positive channel counts (one per stage); got [{string.Join(", ", Dims ?? Array.Empty<int>())}].");
        Positive(ImageSize, nameof(ImageSize)); Positive(InChannels, nameof(InChannels));
        Positive(StemPatchSize, nameof(StemPatchSize)); Positive(MlpRatio, nameof(MlpRatio));
        Positive(DecoderEmbedDim, nameof(DecoderEmbedDim)); Positive(DecoderDepth, nameof(DecoderDepth));
        if (ImageSize % TotalStride != 0)
            throw new ArgumentException($"ImageSize must be a multiple of the total stride {TotalStride} (stem {StemPatchSize} × 8): got {ImageSize}.");
        if (!(LayerNormEps > 0)) throw new ArgumentException($"LayerNormEps must be positive: got {LayerNormEps}.");
        return this;
    }

    /// <summary>Layer ids for layer-wise lr decay by stage: stem 1, each block and the downsampling before it get
    /// their position in the network (the official <c>get_num_layer_for_convnext_single</c>), head
    /// <see cref="NumLayers"/>.</summary>
    public int NumLayers => Depths.Sum() + 1;

    /// <summary>The image geometry (size, channels) as the ViT config the shared input checks and augmentation read;
    /// its ViT fields (patch = the total stride) are not used.</summary>
    internal MaeConfig InputGeometry => new() { ImageSize = ImageSize, InChannels = InChannels, PatchSize = TotalStride };

    /// <summary>Equal settings (stage lists compared element by element, not by reference).</summary>
    public bool Equals(ConvNextV2Config? other)
        => other is not null && ImageSize == other.ImageSize && InChannels == other.InChannels && Depths.SequenceEqual(other.Depths)
           && Dims.SequenceEqual(other.Dims) && StemPatchSize == other.StemPatchSize && MlpRatio == other.MlpRatio && ConvMlp == other.ConvMlp
           && LayerNormEps == other.LayerNormEps && DecoderEmbedDim == other.DecoderEmbedDim && DecoderDepth == other.DecoderDepth
           && NormPixLoss == other.NormPixLoss;

    public override int GetHashCode()
        => HashCode.Combine(ImageSize, InChannels, string.Join(",", Depths), string.Join(",", Dims), ConvMlp, DecoderEmbedDim, DecoderDepth, NormPixLoss);

    public override string ToString()
        => $"ConvNeXt V2 {InChannels}ch {ImageSize}px, depths [{string.Join(", ", Depths)}], dims [{string.Join(", ", Dims)}], " +
           $"{(ConvMlp ? "1×1-conv" : "linear")} MLP ×{MlpRatio}, decoder {DecoderEmbedDim}×{DecoderDepth}, norm_pix_loss {NormPixLoss}";

    static void Positive(int value, string name)
    {
        if (value <= 0) throw new ArgumentException($"{name} must be positive: got {value}.");
    }
}
