using System.Text.Json.Serialization;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Evaluation;
using Mae.MLNet.Input;
using Mae.MLNet.Training;

namespace Mae.MLNet.Pretraining;

/// <summary>What pre-training optimises.</summary>
public enum MaeObjective
{
    /// <summary>The paper's masked-autoencoder reconstruction loss (default).</summary>
    Mae,
    /// <summary>The MAE loss on two views of every image plus an InfoNCE term between them (CAN; see
    /// <see cref="ContrastiveMae"/>): better linear-probe features, one more encoder and decoder pass per image.</summary>
    Contrastive,
}

/// <summary>
/// Pre-training options with the defaults of the reference recipe (facebookresearch/mae <c>main_pretrain.py</c>,
/// <c>engine_pretrain.py</c>, <c>util/lr_sched.py</c> and the paper's Table 8): mask ratio 0.75, AdamW with
/// betas (0.9, 0.95) and weight decay 0.05, <c>lr = base_lr × effective batch / 256</c> with base 1.5e-4,
/// per-iteration linear warmup then half-cycle cosine to <see cref="MaeTrainingOptions.MinLearningRate"/>. The loss target
/// (<c>--norm_pix_loss</c>) belongs to the model: <see cref="MaeConfig.NormPixLoss"/>.
/// </summary>
public sealed class MaePretrainOptions : MaeTrainingOptions
{
    /// <summary>main_pretrain.py's recipe: 400 epochs, 40 of warm-up, blr 1.5e-4, min lr 0, β₂ 0.95; a checkpoint
    /// every 20 epochs, progress every step. The batch (64) and the rest are <see cref="MaeTrainingOptions"/>'s.</summary>
    public MaePretrainOptions()
    {
        Epochs = 400;
        WarmupEpochs = 40;
        BaseLearningRate = 1.5e-4;
        MinLearningRate = 0;
        Beta2 = 0.95;
        CheckpointEvery = 20;
        LogEvery = 1;
    }

    /// <summary>Fraction of patches removed per image (the paper's 75 %).</summary>
    public double MaskRatio { get; set; } = 0.75;

    /// <summary>
    /// Decay the tokens too. By default the model's <see cref="MaskedAutoencoder.NoWeightDecay"/> names (cls and mask
    /// token) get no weight decay, like every 1-D parameter (timm's <c>param_groups_weight_decay</c> rule). The
    /// official <c>main_pretrain.py</c> passes no such list, so it <em>does</em> decay <c>cls_token</c> and
    /// <c>mask_token</c>: set this to true to reproduce that exactly. Default false.
    /// </summary>
    public bool DecayTokens { get; set; }

    /// <summary>The objective; <see cref="MaeObjective.Contrastive"/> adds the InfoNCE term below.</summary>
    public MaeObjective Objective { get; set; } = MaeObjective.Mae;
    /// <summary>Weight of the InfoNCE term next to the MAE loss (Contrastive only; 0 = the MAE loss on two views).</summary>
    public double ContrastiveWeight { get; set; } = 0.1;
    /// <summary>InfoNCE temperature (Contrastive only; SimCLR's and CAN's 0.1).</summary>
    public double ContrastiveTemperature { get; set; } = 0.1;
    /// <summary>Output width of the projection head (Contrastive only).</summary>
    public int ProjectionDim { get; set; } = 128;

    /// <summary>A kNN probe on held-out labelled images every few epochs (null: none).</summary>
    [JsonIgnore]
    public Evaluation.MaeKnnMonitor? KnnMonitor { get; set; }

    /// <summary>Batched augmentation / normalisation applied to every batch on the device; <c>null</c>: none. With
    /// <see cref="MaeObjective.Contrastive"/> it is applied twice, drawing two views.</summary>
    [JsonIgnore]
    public IBatchTransform? Transform { get; set; }

    /// <summary>A copy (the transform reference is shared).</summary>
    public MaePretrainOptions Clone() => (MaePretrainOptions)MemberwiseClone();

    /// <summary>Checks every setting; throws <see cref="ArgumentException"/> (or a subclass) naming the setting,
    /// the expected range and the actual value.</summary>
    public MaePretrainOptions Validate()
    {
        if (!(MaskRatio > 0 && MaskRatio < 1))
            throw new ArgumentOutOfRangeException(nameof(MaskRatio), MaskRatio, $"MaskRatio must be in the open interval (0, 1); got {MaskRatio}.");
        ValidateRecipe();
        if (!Enum.IsDefined(Objective)) throw new ArgumentOutOfRangeException(nameof(Objective), Objective, "Objective must be Mae or Contrastive.");
        if (!(ContrastiveWeight >= 0) || double.IsInfinity(ContrastiveWeight))
            throw new ArgumentOutOfRangeException(nameof(ContrastiveWeight), ContrastiveWeight, $"ContrastiveWeight must be a finite number ≥ 0; got {ContrastiveWeight}.");
        if (!(ContrastiveTemperature > 0) || double.IsInfinity(ContrastiveTemperature))
            throw new ArgumentOutOfRangeException(nameof(ContrastiveTemperature), ContrastiveTemperature, $"ContrastiveTemperature must be a finite number > 0; got {ContrastiveTemperature}.");
        if (ProjectionDim < 1) throw new ArgumentOutOfRangeException(nameof(ProjectionDim), ProjectionDim, $"ProjectionDim must be at least 1; got {ProjectionDim}.");
        if (Objective == MaeObjective.Contrastive && BatchSize < 2)
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "The contrastive objective needs BatchSize ≥ 2: the other images of a batch are its negatives.");
        return this;
    }

    /// <summary>Checks the options against a model: the mask ratio must keep at least one patch and remove at least
    /// one (<c>1 ≤ floor(L·(1 − ratio)) &lt; L</c>).</summary>
    public MaePretrainOptions Validate(MaeConfig config)
    {
        Validate();
        ArgumentNullException.ThrowIfNull(config);
        CheckMaskRatio(config.NumPatches, "patch");
        return this;
    }

    /// <summary>Checks the options against an FCMAE (ConvNeXt V2) model: the mask ratio must keep and remove at least
    /// one of its last-stage cells; the contrastive objective and the kNN monitor are ViT-only.</summary>
    public MaePretrainOptions Validate(ConvNextV2Config config)
    {
        Validate();
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (Objective != MaeObjective.Mae)
            throw new ArgumentException($"The {Objective} objective is built on the ViT MAE's encoder; FCMAE (ConvNeXt V2) pre-trains with Objective = Mae.", nameof(Objective));
        if (KnnMonitor is not null)
            throw new ArgumentException("The kNN monitor reads a ViT encoder; it is not available for FCMAE (ConvNeXt V2) pre-training: set KnnMonitor = null.", nameof(KnnMonitor));
        CheckMaskRatio(config.MaskGridSize * config.MaskGridSize, $"{config.MaskPatchSize}-px cell");
        return this;
    }

    void CheckMaskRatio(long l, string unit)
    {
        long keep = MaskedAutoencoder.LenKeep(l, MaskRatio);
        if (keep < 1)
            throw new ArgumentOutOfRangeException(nameof(MaskRatio), MaskRatio,
                $"MaskRatio {MaskRatio} keeps no {unit} of the model's {l} (floor({l}·(1 − {MaskRatio})) = {keep}); use a ratio ≤ {(double)(l - 1) / l:0.####}.");
        if (keep >= l)
            throw new ArgumentOutOfRangeException(nameof(MaskRatio), MaskRatio,
                $"MaskRatio {MaskRatio} removes no {unit} of the model's {l} (floor({l}·(1 − {MaskRatio})) = {keep}); use a ratio ≥ {1.0 / l:0.####}.");
    }
}
