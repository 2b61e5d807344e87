namespace Mae.MLNet.Model;

/// <summary>
/// Architecture of a masked autoencoder: a ViT encoder over patches of <see cref="PatchSize"/> pixels and a
/// lightweight decoder that predicts the pixels of every patch. Mirrors the constructor of
/// <c>MaskedAutoencoderViT</c> in facebookresearch/mae <c>models_mae.py</c>.
/// </summary>
public sealed record MaeConfig
{
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 16;
    public int InChannels { get; init; } = 3;
    public int EmbedDim { get; init; } = 1024;
    public int Depth { get; init; } = 24;
    public int NumHeads { get; init; } = 16;
    public int DecoderEmbedDim { get; init; } = 512;
    public int DecoderDepth { get; init; } = 8;
    public int DecoderNumHeads { get; init; } = 16;
    public double MlpRatio { get; init; } = 4.0;
    /// <summary>Standardise every target patch by its own mean and (unbiased) variance before the MSE (the official
    /// <c>--norm_pix_loss</c>). The one place this setting lives: training follows the model. Off in a bare config, as
    /// <c>models_mae.py</c>'s constructor; on in every preset, as the paper's default target (Table 1d) and every
    /// command of the official PRETRAIN.md. Weight files that record it (official <c>args</c>, config JSON) set it on load.</summary>
    public bool NormPixLoss { get; init; }
    /// <summary>LayerNorm epsilon; the official presets use <c>partial(nn.LayerNorm, eps=1e-6)</c>.</summary>
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>Patches per side.</summary>
    public int GridSize => ImageSize / PatchSize;
    /// <summary>Number of patches L.</summary>
    public int NumPatches => GridSize * GridSize;
    /// <summary>Values per patch, p²·C (the decoder's prediction width).</summary>
    public int PatchDim => PatchSize * PatchSize * InChannels;
    public int MlpHiddenDim => (int)(EmbedDim * MlpRatio);
    public int DecoderMlpHiddenDim => (int)(DecoderEmbedDim * MlpRatio);

    /// <summary>MAE ViT-B/16 (official <c>mae_vit_base_patch16_dec512d8b</c>).</summary>
    public static MaeConfig VitBase16 => new() { PatchSize = 16, EmbedDim = 768, Depth = 12, NumHeads = 12, NormPixLoss = true };
    /// <summary>MAE ViT-L/16 (official <c>mae_vit_large_patch16_dec512d8b</c>).</summary>
    public static MaeConfig VitLarge16 => new() { PatchSize = 16, EmbedDim = 1024, Depth = 24, NumHeads = 16, NormPixLoss = true };
    /// <summary>MAE ViT-H/14 (official <c>mae_vit_huge_patch14_dec512d8b</c>).</summary>
    public static MaeConfig VitHuge14 => new() { PatchSize = 14, EmbedDim = 1280, Depth = 32, NumHeads = 16, NormPixLoss = true };

    /// <summary>CPU preset: 32 px RGB, patch 4 (8×8 grid), encoder 192×12 blocks×3 heads, decoder 128×2×4.</summary>
    public static MaeConfig Tiny32 => new()
    {
        ImageSize = 32, PatchSize = 4, InChannels = 3, EmbedDim = 192, Depth = 12, NumHeads = 3,
        DecoderEmbedDim = 128, DecoderDepth = 2, DecoderNumHeads = 4, NormPixLoss = true,
    };

    /// <summary>CPU preset for 28 px grey images (Fashion-MNIST): patch 7 (4×4 grid), encoder 192×6×3, decoder 128×2×4.</summary>
    public static MaeConfig Mnist28 => new()
    {
        ImageSize = 28, PatchSize = 7, InChannels = 1, EmbedDim = 192, Depth = 6, NumHeads = 3,
        DecoderEmbedDim = 128, DecoderDepth = 2, DecoderNumHeads = 4, NormPixLoss = true,
    };

    /// <summary>Looks a preset up by name: vit-b16, vit-l16, vit-h14, tiny32, mnist28 (case-insensitive).</summary>
    public static MaeConfig Preset(string name) => name.ToLowerInvariant() switch
    {
        "vit-b16" or "vit_base_patch16" or "base" => VitBase16,
        "vit-l16" or "vit_large_patch16" or "large" => VitLarge16,
        "vit-h14" or "vit_huge_patch14" or "huge" => VitHuge14,
        "tiny32" => Tiny32,
        "mnist28" => Mnist28,
        _ => throw new ArgumentException(
            $"Unknown MAE preset '{name}'. Expected one of: vit-b16, vit-l16, vit-h14, tiny32, mnist28.", nameof(name)),
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first inconsistent setting.</summary>
    public MaeConfig Validate()
    {
        Positive(ImageSize, nameof(ImageSize)); Positive(PatchSize, nameof(PatchSize));
        Positive(InChannels, nameof(InChannels)); Positive(EmbedDim, nameof(EmbedDim));
        Positive(Depth, nameof(Depth)); Positive(NumHeads, nameof(NumHeads));
        Positive(DecoderEmbedDim, nameof(DecoderEmbedDim)); Positive(DecoderDepth, nameof(DecoderDepth));
        Positive(DecoderNumHeads, nameof(DecoderNumHeads));
        if (ImageSize % PatchSize != 0)
            throw new ArgumentException(
                $"ImageSize must be a multiple of PatchSize: got ImageSize {ImageSize} and PatchSize {PatchSize}.");
        if (EmbedDim % NumHeads != 0)
            throw new ArgumentException($"EmbedDim ({EmbedDim}) must be divisible by NumHeads ({NumHeads}).");
        if (DecoderEmbedDim % DecoderNumHeads != 0)
            throw new ArgumentException(
                $"DecoderEmbedDim ({DecoderEmbedDim}) must be divisible by DecoderNumHeads ({DecoderNumHeads}).");
        // The 2-D sin-cos embedding spends a quarter of the width on each of sin/cos × row/column.
        if (EmbedDim % 4 != 0 || DecoderEmbedDim % 4 != 0)
            throw new ArgumentException(
                $"EmbedDim and DecoderEmbedDim must be multiples of 4 for 2-D sin-cos position embeddings: got {EmbedDim} and {DecoderEmbedDim}.");
        if (!(MlpRatio > 0) || double.IsInfinity(MlpRatio))
            throw new ArgumentException($"MlpRatio must be a positive number: got {MlpRatio}.");
        if (!(LayerNormEps > 0)) throw new ArgumentException($"LayerNormEps must be positive: got {LayerNormEps}.");
        return this;
    }

    static void Positive(int value, string name)
    {
        if (value <= 0) throw new ArgumentException($"{name} must be positive: got {value}.");
    }
}
