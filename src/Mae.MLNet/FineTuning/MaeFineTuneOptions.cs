using System.Text.Json.Serialization;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using Mae.MLNet.Input;

namespace Mae.MLNet.FineTuning;

/// <summary>
/// Fine-tuning options with the defaults of the reference recipe (facebookresearch/mae <c>main_finetune.py</c>,
/// <c>engine_finetune.py</c>, <c>util/lr_decay.py</c>, <c>util/lr_sched.py</c>): AdamW (PyTorch's default betas
/// 0.9 / 0.999) with layer-wise lr decay 0.75 and weight decay 0.05, <c>lr = base_lr × effective batch / 256</c>
/// with base 1e-3, per-iteration linear warmup (5 epochs) then half-cycle cosine to 1e-6, drop path 0.1, label
/// smoothing 0.1, mixup / cutmix off, 50 epochs. The training augmentation is timm's as the reference builds it:
/// RandomResizedCrop(scale 0.08–1, bicubic) + horizontal flip + RandAugment <c>rand-m9-mstd0.5-inc1</c> + normalisation
/// + random erasing (probability 0.25, per-pixel noise, one box).
/// </summary>
public sealed class MaeFineTuneOptions : MaeTrainingOptions
{
    /// <summary>main_finetune.py's recipe: 50 epochs, 5 of warm-up, blr 1e-3, min lr 1e-6, β₂ 0.999; a checkpoint
    /// (<c>finetune-NNNN.maeft</c>) every epoch, progress every 20 steps; TensorBoard gets the reference's <c>loss</c>
    /// and <c>lr</c> per step and <c>perf/test_acc1</c>, <c>perf/test_loss</c> per epoch. The batch (64) and the rest
    /// are <see cref="MaeTrainingOptions"/>'s.</summary>
    public MaeFineTuneOptions()
    {
        Epochs = 50;
        WarmupEpochs = 5;
        BaseLearningRate = 1e-3;
        MinLearningRate = 1e-6;
        Beta2 = 0.999;
        CheckpointEvery = 1;
        LogEvery = 20;
    }

    /// <summary>Layer-wise lr decay (<c>--layer_decay</c>, default 0.75): a parameter of layer id l gets
    /// lr × decay^(depth + 1 − l); 1 turns it off.</summary>
    public double LayerDecay { get; set; } = 0.75;
    /// <summary>Gradient-norm clipping (<c>--clip_grad</c>, default none).</summary>
    public double? ClipGradNorm { get; set; }
    /// <summary>Stochastic depth rate of the last block (<c>--drop_path</c>, default 0.1).</summary>
    public double DropPath { get; set; } = 0.1;
    /// <summary>Label smoothing (<c>--smoothing</c>, default 0.1).</summary>
    public double LabelSmoothing { get; set; } = 0.1;
    /// <summary>Mixup alpha (<c>--mixup</c>); mixup is on when &gt; 0. Default 0.</summary>
    public double Mixup { get; set; }
    /// <summary>CutMix alpha (<c>--cutmix</c>); cutmix is on when &gt; 0. Default 0.</summary>
    public double Cutmix { get; set; }
    /// <summary>Probability of mixing a batch when mixup or cutmix is on (<c>--mixup_prob</c>, default 1).</summary>
    public double MixupProbability { get; set; } = 1.0;
    /// <summary>Probability of cutmix instead of mixup when both are on (<c>--mixup_switch_prob</c>, default 0.5).</summary>
    public double MixupSwitchProbability { get; set; } = 0.5;
    /// <summary>Train the position embeddings, as the reference's timm ViT does (its pos_embed is an ordinary
    /// parameter, loaded from the sin-cos table of pre-training). Default true; the flag is restored after training.</summary>
    public bool TrainPositionEmbedding { get; set; } = true;
    /// <summary>Training augmentation on [0, 1] pixels: RandomResizedCrop + flip + RandAugment + Normalize(mean, std) +
    /// random erasing. Null: the reference's (scale 0.08–1, flip 0.5, RandAugment rand-m9-mstd0.5-inc1 for 1- or 3-channel
    /// models, the default mean/std for the model's channels, erasing 0.25). Validation batches get only the normalisation.</summary>
    public MaeAugmentationOptions? Augmentation { get; set; }
    /// <summary>Keep (and leave in the model) the weights of the epoch with the best validation accuracy, when a
    /// validation source is given. Default true.</summary>
    public bool KeepBestWeights { get; set; } = true;
    /// <summary>Batch size for validation (all images are evaluated; the last batch may be smaller). Default 256.</summary>
    public int EvaluationBatchSize { get; set; } = 256;
    [JsonIgnore] public bool MixupActive => Mixup > 0 || Cutmix > 0;

    /// <summary>A copy (lists and the augmentation options are shared by reference).</summary>
    public MaeFineTuneOptions Clone() => (MaeFineTuneOptions)MemberwiseClone();

    /// <summary>The augmentation that applies to a model: <see cref="Augmentation"/> or the recipe's default.</summary>
    public MaeAugmentationOptions ResolveAugmentation(MaeConfig config) => Augmentation ?? new MaeAugmentationOptions
    {
        OutputSize = config.ImageSize, Channels = config.InChannels, ScaleMin = 0.08, ScaleMax = 1.0,
        RandAugment = config.InChannels is 1 or 3 ? MaeAugmentationOptions.RandAugmentOptions.Parse(MaeFineTuneRecipe.ReferenceRandAugment) : null,
        RandomErasingProbability = MaeFineTuneRecipe.ReferenceRandomErasing,
    };

    /// <summary>Checks every setting; throws <see cref="ArgumentException"/> (or a subclass) naming the setting,
    /// the expected range and the actual value.</summary>
    public MaeFineTuneOptions Validate()
    {
        static ArgumentOutOfRangeException Bad(string name, object value, string rule) => new(name, value, $"{name} must be {rule}; got {value}.");
        ValidateRecipe();
        if (!(LayerDecay > 0 && LayerDecay <= 1)) throw Bad(nameof(LayerDecay), LayerDecay, "in (0, 1]");
        if (ClipGradNorm is double clip && !(clip > 0)) throw Bad(nameof(ClipGradNorm), clip, "> 0 (or null for no clipping)");
        if (!(DropPath >= 0 && DropPath < 1)) throw Bad(nameof(DropPath), DropPath, "in [0, 1)");
        if (!(LabelSmoothing >= 0 && LabelSmoothing < 1)) throw Bad(nameof(LabelSmoothing), LabelSmoothing, "in [0, 1)");
        if (!(Mixup >= 0) || double.IsInfinity(Mixup)) throw Bad(nameof(Mixup), Mixup, "a finite number ≥ 0 (0 = off)");
        if (!(Cutmix >= 0) || double.IsInfinity(Cutmix)) throw Bad(nameof(Cutmix), Cutmix, "a finite number ≥ 0 (0 = off)");
        if (!(MixupProbability >= 0 && MixupProbability <= 1)) throw Bad(nameof(MixupProbability), MixupProbability, "in [0, 1]");
        if (!(MixupSwitchProbability >= 0 && MixupSwitchProbability <= 1)) throw Bad(nameof(MixupSwitchProbability), MixupSwitchProbability, "in [0, 1]");
        if (MixupActive && BatchSize % 2 != 0)
            throw Bad(nameof(BatchSize), BatchSize, "even when mixup or cutmix is on (images are mixed with the batch reversed, as timm's Mixup)");
        if (EvaluationBatchSize < 1) throw Bad(nameof(EvaluationBatchSize), EvaluationBatchSize, "at least 1");
        Augmentation?.Validate();
        return this;
    }
}
