namespace Mae.MLNet.Model;

/// <summary>
/// Architecture of a masked autoencoder: a ViT encoder over patches of <see cref="PatchSize"/> pixels and a
/// lightweight decoder that predicts the pixels of every patch. Mirrors the constructor of
/// <c>MaskedAutoencoderViT</c> in facebookresearch/mae <c>models_mae.py</c>.
/// </summary>
public sealed partial record MaeConfig
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
    /// <summary>How many of the last blocks make this encoder's default linear-probe features (their mean-pooled tokens,
    /// each through the final norm, concatenated; <c>MaeFeaturizerOptions.Layers</c>): every block of an encoder of up
    /// to 6 — the small-image presets; all 6 of <see cref="Nano32"/>'s probed 0.9–1.0 points above its last 4 on
    /// 3 000, 10 000 and 50 000 CIFAR-10 photos (docs/results.md) — and the last 4 of a deeper one (DINO's linear
    /// evaluation, for the 12- to 32-block public models). The CLI's <c>featurize</c> / <c>export</c> and the
    /// quickstart use it.</summary>
    public int FeatureLayers => Depth <= 6 ? Depth : 4;

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

    /// <summary>Small-image preset for CPUs: 32 px RGB, patch 4 (8×8 grid), encoder 128×6 blocks×4 heads, decoder
    /// 64×1×2. Chosen by a training-step speed comparison of 32-px candidates alternating in one run on 2 CPU cores, bf16
    /// (docs/benchmarks.md, "Small-image presets"): 4.0× the img/s of <see cref="Tiny32"/> (192×12), 2.0× a 192×6
    /// encoder, 0.7× a 96×4 one, which has a third of its width×depth. Recipes: <c>MaePretrainRecipe.SmallImages</c>,
    /// <c>MaeFineTuneRecipe.SmallImages</c>.</summary>
    public static MaeConfig Nano32 => new()
    {
        ImageSize = 32, PatchSize = 4, InChannels = 3, EmbedDim = 128, Depth = 6, NumHeads = 4,
        DecoderEmbedDim = 64, DecoderDepth = 1, DecoderNumHeads = 2, NormPixLoss = true,
    };

    /// <summary>The fastest small-image preset: <see cref="Nano32"/>'s patch and decoder with a 96×4 blocks×3 heads encoder
    /// (0.44 M parameters, 0.072 GFLOP per image-step against 0.150): 2.4× nano32's training-step speed on 2 quiet CPU
    /// cores, bf16, and as good a linear probe at equal epochs on the CIFAR-10 subset (docs/benchmarks.md, "Small-image
    /// presets"). Not chosen automatically: in the same 10 minutes on 10 000 CIFAR-10 photos it trained 81 epochs against
    /// nano32's 64 and probed as well linearly but 4 points lower attentively (docs/results.md).</summary>
    public static MaeConfig Pico32 => Nano32 with { EmbedDim = 96, Depth = 4, NumHeads = 3 };

    /// <summary><see cref="Nano32"/> at patch 2 (16×16 grid, 256 patches) — the patch size of yjh0410/MAE's ViT-Nano
    /// CIFAR-10 anchor (89.4 % fine-tuned): finer tokens, 4.2× the matrix work per image and, measured on 2 CPU cores,
    /// about 12× slower than patch 4 (attention over 256 tokens in the decoder); meant for a GPU.</summary>
    public static MaeConfig Nano32P2 => Nano32 with { PatchSize = 2 };

    /// <summary>Looks a preset up by name: vit-b16, vit-l16, vit-h14, tiny32, nano32, nano32-p2, pico32, mnist28 (case-insensitive).</summary>
    public static MaeConfig Preset(string name) => name.ToLowerInvariant() switch
    {
        "vit-b16" or "vit_base_patch16" or "base" => VitBase16,
        "vit-l16" or "vit_large_patch16" or "large" => VitLarge16,
        "vit-h14" or "vit_huge_patch14" or "huge" => VitHuge14,
        "tiny32" => Tiny32,
        "nano32" or "nano32-p4" => Nano32,
        "nano32-p2" => Nano32P2,
        "pico32" => Pico32,
        "mnist28" => Mnist28,
        _ => throw new ArgumentException(
            $"Unknown MAE preset '{name}'. Expected one of: {string.Join(", ", PresetNames)}.", nameof(name)),
    };

    /// <summary>The names <see cref="Preset"/> knows (one per preset).</summary>
    public static IReadOnlyList<string> PresetNames { get; } = new[] { "vit-b16", "vit-l16", "vit-h14", "tiny32", "nano32", "nano32-p2", "pico32", "mnist28" };

    /// <summary>
    /// The preset for images whose typical shorter side is <paramref name="shortSide"/> pixels (the median of a
    /// sample), with <paramref name="channels"/> channels (1 grey, 3 colour), on a CUDA device or not. Small images
    /// (≤ 48 px: CIFAR, thumbnails) get <see cref="Nano32"/> on a CPU and <see cref="Nano32P2"/> on a GPU; 28-px-or-less
    /// grey images <see cref="Mnist28"/>; larger ones up to 160 px the nano encoder at 64 px with patch 8 (the same 8×8
    /// grid, so the same cost per image); photos above that <see cref="VitBase16"/> at 224 px on a GPU and, on a CPU,
    /// the nano encoder at 128 px with patch 16 (ViT-B on 2 cores runs at a few images per second). Grey images keep
    /// 1 channel. The reason is part of the answer, for the tool to print.
    /// </summary>
    public static MaeConfig.PresetChoice ForImages(int shortSide, int channels, bool cuda)
    {
        if (shortSide < 1) throw new ArgumentOutOfRangeException(nameof(shortSide), shortSide, $"The images' shorter side must be ≥ 1 pixel; got {shortSide}.");
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, $"Images have 1 (grey) or 3 (colour) channels; got {channels}.");
        string kind = channels == 1 ? "grey" : "colour";
        if (channels == 1 && shortSide <= 28)
            return new("mnist28", Mnist28, $"{kind} images of {shortSide} px: the 28-px grey preset (patch 7)");
        MaeConfig.PresetChoice Nano(string name, MaeConfig c, string why) => new(name, c with { InChannels = channels }, $"{kind} images of {shortSide} px: {why}");
        if (shortSide <= 48)
            return cuda ? Nano("nano32-p2", Nano32P2, "the small-image preset at 32 px, patch 2 (a GPU is there)")
                        : Nano("nano32", Nano32, "the small-image preset at 32 px, patch 4 (CPU)");
        if (shortSide <= 160)
            return Nano("nano32 at 64 px, patch 8", Nano32 with { ImageSize = 64, PatchSize = 8 }, "the small-image encoder at 64 px, patch 8 (8×8 patches)");
        if (cuda && channels == 3)
            return new("vit-b16", VitBase16, $"{kind} images of {shortSide} px on a GPU: MAE ViT-B/16 at 224 px");
        return Nano("nano32 at 128 px, patch 16", Nano32 with { ImageSize = 128, PatchSize = 16 },
            cuda ? "the small-image encoder at 128 px, patch 16 (8×8 patches)" : "the small-image encoder at 128 px, patch 16 (8×8 patches; ViT-B/16 is too slow for a CPU)");
    }

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

public sealed partial record MaeConfig
{
    /// <summary>What <see cref="MaeConfig.ForImages"/> chose: a name to print (a preset's, or a preset with another size),
    /// the config, and why.</summary>
    public sealed record PresetChoice(string Name, MaeConfig Config, string Reason);
}
