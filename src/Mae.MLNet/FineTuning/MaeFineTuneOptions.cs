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
/// smoothing 0.1, mixup / cutmix off, 50 epochs. The training augmentation is RandomResizedCrop(scale 0.08–1) +
/// horizontal flip + normalisation (the reference's RandAugment and random erasing are not implemented).
/// </summary>
public sealed class MaeFineTuneOptions
{
    /// <summary>Images per step (<c>--batch_size</c>); the last incomplete batch of an epoch is dropped.</summary>
    public int BatchSize { get; set; } = 64;
    /// <summary>Gradient accumulation (<c>--accum_iter</c>).</summary>
    public int AccumIter { get; set; } = 1;
    public int Epochs { get; set; } = 50;
    /// <summary>Epochs of linear warmup (<c>--warmup_epochs</c>, default 5); may be fractional.</summary>
    public double WarmupEpochs { get; set; } = 5;
    /// <summary>Base learning rate (<c>--blr</c>, default 1e-3); absolute lr = base × effective batch / 256.</summary>
    public double BaseLearningRate { get; set; } = 1e-3;
    /// <summary>Absolute peak learning rate (<c>--lr</c>); overrides <see cref="BaseLearningRate"/> when set.</summary>
    public double? LearningRate { get; set; }
    /// <summary>Floor of the cosine schedule (<c>--min_lr</c>, default 1e-6).</summary>
    public double MinLearningRate { get; set; } = 1e-6;
    /// <summary>Layer-wise lr decay (<c>--layer_decay</c>, default 0.75): a parameter of layer id l gets
    /// lr × decay^(depth + 1 − l); 1 turns it off.</summary>
    public double LayerDecay { get; set; } = 0.75;
    public double WeightDecay { get; set; } = 0.05;
    public double Beta1 { get; set; } = 0.9;
    public double Beta2 { get; set; } = 0.999;
    public double Epsilon { get; set; } = 1e-8;
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
    /// <summary>Training augmentation on [0, 1] pixels: RandomResizedCrop + flip + Normalize(mean, std). Null: scale
    /// 0.08–1, flip 0.5, the default mean/std for the model's channels. Validation batches get only the normalisation.</summary>
    public MaeAugmentationOptions? Augmentation { get; set; }
    /// <summary>Keep (and leave in the model) the weights of the epoch with the best validation accuracy, when a
    /// validation source is given. Default true.</summary>
    public bool KeepBestWeights { get; set; } = true;
    /// <summary>Batch size for validation (all images are evaluated; the last batch may be smaller). Default 256.</summary>
    public int EvaluationBatchSize { get; set; } = 256;
    public long Seed { get; set; }
    public MaeDevice Device { get; set; } = MaeDevice.Auto;
    /// <summary>libtorch intra-op threads during training (restored afterwards); null leaves the process setting.</summary>
    public int? Threads { get; set; }
    public MaePrecision Precision { get; set; } = MaePrecision.Fp32;
    /// <summary>Folder for checkpoints (<c>finetune-NNNN.maeft</c>); null writes none.</summary>
    public string? CheckpointDir { get; set; }
    /// <summary>Write a checkpoint every this many epochs (and after the last). Default 1, as the reference.</summary>
    public int CheckpointEvery { get; set; } = 1;
    /// <summary>Continue from the latest checkpoint in <see cref="CheckpointDir"/> when there is one.</summary>
    public bool Resume { get; set; }
    /// <summary>Report progress every this many steps (and at the end of each epoch).</summary>
    public int LogEvery { get; set; } = 20;
    /// <summary>A JSONL file that receives one line per report (as pre-training's); null writes none. On resume, lines
    /// after the checkpoint's step are dropped.</summary>
    public string? MetricsFile { get; set; }
    /// <summary>A folder for TensorBoard event files (the reference's <c>loss</c> and <c>lr</c> per step on the epoch×1000
    /// axis, <c>perf/test_acc1</c> and <c>perf/test_loss</c> per epoch); null writes none.</summary>
    public string? TensorBoardDir { get; set; }

    /// <summary>Data-parallel fine-tuning over the ranks of this collective (null: one process), as
    /// <see cref="Pretraining.MaePretrainOptions.Collective"/>: <see cref="BatchSize"/> is the global batch, each rank reads
    /// its shard of the (seed, epoch) order, gradients are averaged before every step, rank 0 alone reports and writes.
    /// Augmentation, mixup and drop path draw from each rank's own generator (the same seed on every rank).</summary>
    [JsonIgnore] public Mae.MLNet.Training.IMaeCollective? Collective { get; set; }

    [JsonIgnore] public long EffectiveBatchSize => (long)BatchSize * AccumIter;
    [JsonIgnore] public double PeakLearningRate => LearningRate ?? BaseLearningRate * EffectiveBatchSize / 256.0;
    [JsonIgnore] public bool MixupActive => Mixup > 0 || Cutmix > 0;

    /// <summary>A copy (lists and the augmentation options are shared by reference).</summary>
    public MaeFineTuneOptions Clone() => (MaeFineTuneOptions)MemberwiseClone();

    /// <summary>The augmentation that applies to a model: <see cref="Augmentation"/> or the recipe's default.</summary>
    public MaeAugmentationOptions ResolveAugmentation(MaeConfig config) => Augmentation ?? new MaeAugmentationOptions
    {
        OutputSize = config.ImageSize, Channels = config.InChannels, ScaleMin = 0.08, ScaleMax = 1.0,
    };

    /// <summary>Checks every setting; throws <see cref="ArgumentException"/> (or a subclass) naming the setting,
    /// the expected range and the actual value.</summary>
    public MaeFineTuneOptions Validate()
    {
        static ArgumentOutOfRangeException Bad(string name, object value, string rule) => new(name, value, $"{name} must be {rule}; got {value}.");
        if (BatchSize < 1) throw Bad(nameof(BatchSize), BatchSize, "at least 1");
        if (AccumIter < 1) throw Bad(nameof(AccumIter), AccumIter, "at least 1");
        if (Epochs < 1) throw Bad(nameof(Epochs), Epochs, "at least 1");
        if (!(WarmupEpochs >= 0) || WarmupEpochs > Epochs) throw Bad(nameof(WarmupEpochs), WarmupEpochs, $"in [0, Epochs = {Epochs}]");
        if (LearningRate is double lr && (!(lr > 0) || double.IsInfinity(lr))) throw Bad(nameof(LearningRate), lr, "a finite number > 0");
        if (LearningRate is null && (!(BaseLearningRate > 0) || double.IsInfinity(BaseLearningRate)))
            throw Bad(nameof(BaseLearningRate), BaseLearningRate, "a finite number > 0");
        if (!(MinLearningRate >= 0) || MinLearningRate > PeakLearningRate)
            throw Bad(nameof(MinLearningRate), MinLearningRate, $"in [0, peak lr = {PeakLearningRate}]");
        if (!(LayerDecay > 0 && LayerDecay <= 1)) throw Bad(nameof(LayerDecay), LayerDecay, "in (0, 1]");
        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay)) throw Bad(nameof(WeightDecay), WeightDecay, "a finite number ≥ 0");
        if (!(Beta1 >= 0 && Beta1 < 1)) throw Bad(nameof(Beta1), Beta1, "in [0, 1)");
        if (!(Beta2 >= 0 && Beta2 < 1)) throw Bad(nameof(Beta2), Beta2, "in [0, 1)");
        if (!(Epsilon > 0)) throw Bad(nameof(Epsilon), Epsilon, "> 0");
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
        if (Threads is int t && t < 1) throw Bad(nameof(Threads), t, "at least 1 (or null)");
        if (!Enum.IsDefined(Device)) throw Bad(nameof(Device), Device, "Auto, Cpu or Cuda");
        if (!Enum.IsDefined(Precision)) throw Bad(nameof(Precision), Precision, "Fp32 or Bf16");
        if (CheckpointEvery < 1) throw Bad(nameof(CheckpointEvery), CheckpointEvery, "at least 1");
        if (Resume && string.IsNullOrWhiteSpace(CheckpointDir))
            throw new ArgumentException("Resume is set but CheckpointDir is empty: resuming needs the folder that holds the checkpoints.", nameof(CheckpointDir));
        if (LogEvery < 1) throw Bad(nameof(LogEvery), LogEvery, "at least 1");
        Augmentation?.Validate();
        return this;
    }
}
