using Mae.MLNet.Input;
using Mae.MLNet.Model;

namespace Mae.MLNet.FineTuning;

/// <summary>
/// How to fine-tune a given model. <see cref="Reference"/> is <see cref="MaeFineTuneOptions"/>' defaults (main_finetune.py's
/// argument defaults); <see cref="SmallImages"/> scales the official FINETUNE.md recipe (ViT-B: 100 epochs, 5 of warm-up,
/// blr 5e-4 at batch 1 024, layer decay 0.65, drop path 0.1, mixup 0.8, cutmix 1.0, smoothing 0.1) down to the 32-px
/// presets (see its remarks). <c>RandAugment</c> is a timm config (<see cref="MaeAugmentationOptions.RandAugmentOptions.Parse"/>) or null for
/// none; <c>RandomErasing</c> the erasing probability (<c>--reprob</c>), 0 = off. <see cref="For(MaeConfig)"/> (or <see cref="For(ConvNextV2Config)"/>) picks one from the model; <see cref="ApplyTo(MaeFineTuneOptions, MaeConfig)"/> writes it into options.
/// </summary>
public sealed record MaeFineTuneRecipe(string Name, int BatchSize, double BaseLearningRate, int Epochs, double WarmupEpochs,
    double LayerDecay, double DropPath, double LabelSmoothing, double Mixup, double Cutmix, double CropScaleMin,
    string? RandAugment = null, double RandomErasing = 0)
{
    /// <summary>main_finetune.py's <c>--aa</c> default.</summary>
    public const string ReferenceRandAugment = "rand-m9-mstd0.5-inc1";
    /// <summary>main_finetune.py's <c>--reprob</c> default.</summary>
    public const double ReferenceRandomErasing = 0.25;

    /// <summary>main_finetune.py's defaults (batch 64, blr 1e-3, 50 epochs, 5 of warm-up, layer decay 0.75, drop path 0.1,
    /// smoothing 0.1, no mixup / cutmix, crop scale 0.08–1, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25).</summary>
    public static MaeFineTuneRecipe Reference => new("reference", 64, 1e-3, 50, 5, 0.75, 0.1, 0.1, 0, 0, 0.08,
        ReferenceRandAugment, ReferenceRandomErasing);

    /// <summary>
    /// The 32-px presets' recipe, the official ViT-B recipe scaled to a shallow model and small images: 100 epochs with
    /// 5 of warm-up (the official length, which the project's Fashion-MNIST study also used to reach 93.5 %); batch 128
    /// with blr 4e-3, i.e. lr 2e-3 (that study's lr for its 4-block model; the official lr at batch 1 024 is 2e-3 too;
    /// on the full CIFAR-10 from one 63-epoch nano32 encoder, blr 1e-3 / 2e-3 / 4e-3 / 8e-3 fine-tuned to 78.6 / 81.4 / 83.1 /
    /// 83.6 % in 8 epochs and 4e-3 / 8e-3 to 87.3 / 87.5 % in 28, the 60-minute length: the reference's lower rates lose
    /// at short lengths, twice this one gains nothing measurable; docs/results.md);
    /// layer decay 0.75 (0.65 is ViT-B's for 12 blocks: with 6 blocks 0.75⁷ ≈ 0.13 already leaves the patch embedding a
    /// small lr; the from-scratch control keeps it: without it, 8 epochs from random weights scored 67.0 against 69.4 %
    /// on CIFAR-10); drop path 0.1 × depth / 12 (stochastic depth in proportion to the depth: 0.05 for 6 blocks);
    /// smoothing 0.1 as official; crop scale 0.6–1 (0.08 of a 32-px image is a 9-px square: in CI's 3-epoch toy check 0.35
    /// fine-tuned to 23.5 % and 0.08 to 20.0 %; on the full CIFAR-10, from one 42-epoch nano32 encoder side by side,
    /// 0.6 beat 0.35 at every length tried — 80.8 against 79.8 % in 8 epochs, 81.6 against 80.3 % in a 50-minute box,
    /// 86.0 against 85.3 % in 29 epochs, the 60-minute length; docs/results.md).
    /// No mixup and no cutmix (the official 0.8 / 1.0 are for 100 epochs of ViT-B on ImageNet): on the full CIFAR-10
    /// (docs/results.md), from one 50-minute nano32 encoder and side by side on one core each, half the official values
    /// (mixup 0.4, cutmix 0.5) lost to none at every length tried — 71.0 against 74.8 % in 4 epochs, 76.8 against 79.1 %
    /// in 7, 80.8 against 82.8 % in a 50-minute box (15 epochs with them, 13 without) — and from scratch 66.2 against
    /// 71.2 % in the same box. A longer schedule may still gain from them: pass <c>--mixup</c> / <c>--cutmix</c>.
    /// No RandAugment and no random erasing either (the reference's rand-m9-mstd0.5-inc1 and 0.25): in the same 50-minute
    /// box, side by side, they fine-tuned to 79.2 % in 15 epochs against 82.9 % in 14 without (docs/results.md); pass
    /// <c>--aa</c> / <c>--reprob</c> for longer schedules.
    /// </summary>
    public static MaeFineTuneRecipe SmallImages(int depth) =>
        new("small-images", 128, 4e-3, 100, 5, 0.75, Math.Round(0.1 * depth / 12.0, 3), 0.1, 0, 0, 0.6);

    /// <summary><see cref="SmallImages"/> for models of at most 64 px, else <see cref="Reference"/>.</summary>
    public static MaeFineTuneRecipe For(MaeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.ImageSize <= 64 ? SmallImages(config.Depth) : Reference;
    }

    /// <summary>A ConvNeXt V2's recipe: <see cref="SmallImages"/> with drop path 0.1 (main_finetune.py's default; the
    /// ViT rule's depth/12 scaling has no counterpart in a four-stage network) for models of at most 64 px, else
    /// <see cref="Reference"/>. The layer decay applies by stage (<see cref="ConvNextV2.LayerId"/>). No mixup or cutmix
    /// either, nor RandAugment or erasing, as measured for the ViT presets (a ConvNeXt V2 was not compared with and without them).</summary>
    public static MaeFineTuneRecipe For(ConvNextV2Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.ImageSize <= 64 ? SmallImages(12) : Reference;
    }

    /// <summary><see cref="ApplyTo(MaeFineTuneOptions, MaeConfig)"/> for a ConvNeXt V2 (its image size and channels).</summary>
    public MaeFineTuneOptions ApplyTo(MaeFineTuneOptions options, ConvNextV2Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return ApplyTo(options, config.Validate().InputGeometry);
    }

    /// <summary>Writes every field of the recipe into <paramref name="options"/> (clears an absolute learning rate and sets
    /// the augmentation for <paramref name="config"/>); returns it.</summary>
    public MaeFineTuneOptions ApplyTo(MaeFineTuneOptions options, MaeConfig config)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(config);
        options.ApplySchedule(BatchSize, BaseLearningRate, Epochs, WarmupEpochs);
        options.LayerDecay = LayerDecay;
        options.DropPath = DropPath;
        options.LabelSmoothing = LabelSmoothing;
        options.Mixup = Mixup;
        options.Cutmix = Cutmix;
        options.Augmentation = new MaeAugmentationOptions
        {
            OutputSize = config.ImageSize, Channels = config.InChannels, ScaleMin = CropScaleMin, ScaleMax = 1.0,
            RandAugment = RandAugment is null ? null : MaeAugmentationOptions.RandAugmentOptions.Parse(RandAugment), RandomErasingProbability = RandomErasing,
        };
        return options;
    }
}
