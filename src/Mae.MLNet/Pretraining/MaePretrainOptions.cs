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
/// per-iteration linear warmup then half-cycle cosine to <see cref="MinLearningRate"/>. The loss target
/// (<c>--norm_pix_loss</c>) belongs to the model: <see cref="MaeConfig.NormPixLoss"/>.
/// </summary>
public sealed class MaePretrainOptions
{
    /// <summary>Fraction of patches removed per image (the paper's 75 %).</summary>
    public double MaskRatio { get; set; } = 0.75;

    /// <summary>Images per step (the reference's <c>--batch_size</c>, per device). The last incomplete batch of an
    /// epoch is dropped, as the reference's loader does (<c>drop_last=True</c>).</summary>
    public int BatchSize { get; set; } = 64;

    /// <summary>Gradient accumulation (<c>--accum_iter</c>): the loss is divided by it and the optimizer steps every
    /// that many batches. Effective batch = <see cref="BatchSize"/> × <see cref="AccumIter"/>.</summary>
    public int AccumIter { get; set; } = 1;

    /// <summary>Training epochs (reference default 400).</summary>
    public int Epochs { get; set; } = 400;

    /// <summary>Epochs of linear warmup (reference default 40); may be fractional, must not exceed <see cref="Epochs"/>.</summary>
    public double WarmupEpochs { get; set; } = 40;

    /// <summary>Base learning rate (<c>--blr</c>); the absolute lr is <c>BaseLearningRate × effective batch / 256</c>
    /// unless <see cref="LearningRate"/> is set. 1.5e-4 is the paper's value.</summary>
    public double BaseLearningRate { get; set; } = 1.5e-4;

    /// <summary>Absolute peak learning rate (<c>--lr</c>); when set it overrides <see cref="BaseLearningRate"/>.</summary>
    public double? LearningRate { get; set; }

    /// <summary>Floor of the cosine schedule (<c>--min_lr</c>, default 0).</summary>
    public double MinLearningRate { get; set; }

    /// <summary>AdamW decoupled weight decay for the decayed group (default 0.05).</summary>
    public double WeightDecay { get; set; } = 0.05;

    public double Beta1 { get; set; } = 0.9;
    public double Beta2 { get; set; } = 0.95;
    /// <summary>AdamW epsilon (PyTorch's default 1e-8).</summary>
    public double Epsilon { get; set; } = 1e-8;

    /// <summary>
    /// Decay the tokens too. By default the model's <see cref="MaskedAutoencoder.NoWeightDecay"/> names (cls and mask
    /// token) get no weight decay, like every 1-D parameter (timm's <c>param_groups_weight_decay</c> rule). The
    /// official <c>main_pretrain.py</c> passes no such list, so it <em>does</em> decay <c>cls_token</c> and
    /// <c>mask_token</c>: set this to true to reproduce that exactly. Default false.
    /// </summary>
    public bool DecayTokens { get; set; }

    /// <summary>Seed for libtorch's generators at the start of a fresh run (reference default 0).</summary>
    public long Seed { get; set; }

    public MaeDevice Device { get; set; } = MaeDevice.Auto;

    /// <summary>libtorch intra-op threads during training (the previous setting is restored afterwards); <c>null</c>
    /// leaves the process setting alone. CPU results repeat bit for bit only with the same thread count.</summary>
    public int? Threads { get; set; }

    public MaePrecision Precision { get; set; } = MaePrecision.Fp32;

    /// <summary>Folder for checkpoints (<c>checkpoint-NNNN.maeckpt</c>); <c>null</c> writes none.</summary>
    public string? CheckpointDir { get; set; }

    /// <summary>Write a checkpoint every this many epochs (and always after the last one).</summary>
    public int CheckpointEvery { get; set; } = 20;

    /// <summary>Continue from the latest checkpoint in <see cref="CheckpointDir"/> when there is one.</summary>
    public bool Resume { get; set; }

    /// <summary>Append one JSON line of metrics (epoch, step, global_step, loss, lr, images_per_s, eta_s, elapsed_s, time)
    /// per <see cref="LogEvery"/> steps to this file, flushed per line; <c>null</c>: none. A fresh run starts the
    /// file anew; a resumed run keeps the lines up to the checkpoint's step and drops those a killed run logged after it.</summary>
    public string? MetricsFile { get; set; }

    /// <summary>Report progress / metrics every this many steps.</summary>
    public int LogEvery { get; set; } = 1;

    /// <summary>Write TensorBoard event files (train_loss, lr against epoch×1000, as the reference) to this folder.</summary>
    public string? TensorBoardDir { get; set; }

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

    /// <summary>
    /// Data-parallel training over the ranks of this collective (<see cref="Training.MaeCollective.FromEnvironment"/>
    /// under <c>mpirun</c>); null: one process. <see cref="BatchSize"/> is then the global batch of a step, each rank
    /// reads <c>BatchSize / WorldSize</c> images of its shard of the epoch (<see cref="MaeDataShard"/>), gradients are
    /// averaged before every AdamW step, and the epoch order and masking noise come from (seed, epoch, position)
    /// (<c>MaePlanRandom</c>), so any world size takes the same steps — with a collective of world size 1 too.
    /// Rank 0 alone writes checkpoints, metrics, TensorBoard and progress.
    /// </summary>
    [JsonIgnore]
    public Training.IMaeCollective? Collective { get; set; }

    /// <summary>Effective batch per optimizer step, <see cref="BatchSize"/> × <see cref="AccumIter"/>.</summary>
    [JsonIgnore]
    public long EffectiveBatchSize => (long)BatchSize * AccumIter;

    /// <summary>Peak learning rate: <see cref="LearningRate"/> if set, else <c>BaseLearningRate × effective batch / 256</c>.</summary>
    [JsonIgnore]
    public double PeakLearningRate => LearningRate ?? BaseLearningRate * EffectiveBatchSize / 256.0;

    /// <summary>A copy (the transform reference is shared).</summary>
    public MaePretrainOptions Clone() => (MaePretrainOptions)MemberwiseClone();

    /// <summary>Checks every setting; throws <see cref="ArgumentException"/> (or a subclass) naming the setting,
    /// the expected range and the actual value.</summary>
    public MaePretrainOptions Validate()
    {
        if (!(MaskRatio > 0 && MaskRatio < 1))
            throw new ArgumentOutOfRangeException(nameof(MaskRatio), MaskRatio, $"MaskRatio must be in the open interval (0, 1); got {MaskRatio}.");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, $"BatchSize must be at least 1; got {BatchSize}.");
        if (AccumIter < 1) throw new ArgumentOutOfRangeException(nameof(AccumIter), AccumIter, $"AccumIter (gradient accumulation steps) must be at least 1; got {AccumIter}.");
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, $"Epochs must be at least 1; got {Epochs}.");
        if (!(WarmupEpochs >= 0) || double.IsInfinity(WarmupEpochs))
            throw new ArgumentOutOfRangeException(nameof(WarmupEpochs), WarmupEpochs, $"WarmupEpochs must be a finite number ≥ 0; got {WarmupEpochs}.");
        if (WarmupEpochs > Epochs)
            throw new ArgumentOutOfRangeException(nameof(WarmupEpochs), WarmupEpochs, $"WarmupEpochs ({WarmupEpochs}) must not exceed Epochs ({Epochs}).");
        if (LearningRate is double lr)
        {
            if (!(lr > 0) || double.IsInfinity(lr))
                throw new ArgumentOutOfRangeException(nameof(LearningRate), lr, $"LearningRate must be a finite number > 0; got {lr}.");
        }
        else if (!(BaseLearningRate > 0) || double.IsInfinity(BaseLearningRate))
            throw new ArgumentOutOfRangeException(nameof(BaseLearningRate), BaseLearningRate, $"BaseLearningRate must be a finite number > 0; got {BaseLearningRate}.");
        if (!(MinLearningRate >= 0) || MinLearningRate > PeakLearningRate)
            throw new ArgumentOutOfRangeException(nameof(MinLearningRate), MinLearningRate,
                $"MinLearningRate must be in [0, peak lr = {PeakLearningRate}]; got {MinLearningRate}.");
        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay))
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, $"WeightDecay must be a finite number ≥ 0; got {WeightDecay}.");
        if (!(Beta1 >= 0 && Beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, $"Beta1 must be in [0, 1); got {Beta1}.");
        if (!(Beta2 >= 0 && Beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, $"Beta2 must be in [0, 1); got {Beta2}.");
        if (!(Epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, $"Epsilon must be > 0; got {Epsilon}.");
        if (Threads is int t && t < 1) throw new ArgumentOutOfRangeException(nameof(Threads), t, $"Threads must be at least 1 (or null to keep the process setting); got {t}.");
        if (!Enum.IsDefined(Device)) throw new ArgumentOutOfRangeException(nameof(Device), Device, "Device must be Auto, Cpu or Cuda.");
        if (!Enum.IsDefined(Precision)) throw new ArgumentOutOfRangeException(nameof(Precision), Precision, "Precision must be Fp32 or Bf16.");
        if (CheckpointEvery < 1) throw new ArgumentOutOfRangeException(nameof(CheckpointEvery), CheckpointEvery, $"CheckpointEvery must be at least 1; got {CheckpointEvery}.");
        if (Resume && string.IsNullOrWhiteSpace(CheckpointDir))
            throw new ArgumentException("Resume is set but CheckpointDir is empty: resuming needs the folder that holds the checkpoints.", nameof(CheckpointDir));
        if (LogEvery < 1) throw new ArgumentOutOfRangeException(nameof(LogEvery), LogEvery, $"LogEvery must be at least 1; got {LogEvery}.");
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
        long l = config.NumPatches, keep = MaskedAutoencoder.LenKeep(l, MaskRatio);
        if (keep < 1)
            throw new ArgumentOutOfRangeException(nameof(MaskRatio), MaskRatio,
                $"MaskRatio {MaskRatio} keeps no patch of the model's {l} (floor({l}·(1 − {MaskRatio})) = {keep}); use a ratio ≤ {(double)(l - 1) / l:0.####}.");
        if (keep >= l)
            throw new ArgumentOutOfRangeException(nameof(MaskRatio), MaskRatio,
                $"MaskRatio {MaskRatio} removes no patch of the model's {l} (floor({l}·(1 − {MaskRatio})) = {keep}); use a ratio ≥ {1.0 / l:0.####}.");
        return this;
    }
}
