using System.Text.Json.Serialization;
using Mae.MLNet.Runtime;

namespace Mae.MLNet.Training;

/// <summary>
/// The recipe every training task runs on the one engine (as ML.NET's TorchSharp trainers share one options base):
/// batch, schedule, AdamW, seed, device, precision, checkpoints, logging, data parallel. Each task's options derive
/// from it and set their paper's defaults in their constructor — pre-training <c>main_pretrain.py</c>'s, fine-tuning
/// <c>main_finetune.py</c>'s — so a default is written once per task, checked here once, and handed to the engine
/// by <see cref="EngineSettings"/> alone.
/// </summary>
public abstract class MaeTrainingOptions
{
    /// <summary>Images per step (the reference's <c>--batch_size</c>; with a <see cref="Collective"/>, the global batch
    /// of a step). The last incomplete batch of an epoch is dropped (<c>drop_last=True</c>).</summary>
    public int BatchSize { get; set; } = 64;

    /// <summary>Gradient accumulation (<c>--accum_iter</c>): the loss is divided by it and the optimizer steps every
    /// that many batches. Effective batch = <see cref="BatchSize"/> × <see cref="AccumIter"/>.</summary>
    public int AccumIter { get; set; } = 1;

    /// <summary>Training epochs.</summary>
    public int Epochs { get; set; }

    /// <summary>Epochs of linear warm-up; may be fractional, must not exceed <see cref="Epochs"/>.</summary>
    public double WarmupEpochs { get; set; }

    /// <summary>Base learning rate (<c>--blr</c>); the absolute lr is <c>BaseLearningRate × effective batch / 256</c>
    /// unless <see cref="LearningRate"/> is set.</summary>
    public double BaseLearningRate { get; set; }

    /// <summary>Absolute peak learning rate (<c>--lr</c>); when set it overrides <see cref="BaseLearningRate"/>.</summary>
    public double? LearningRate { get; set; }

    /// <summary>Floor of the cosine schedule (<c>--min_lr</c>).</summary>
    public double MinLearningRate { get; set; }

    /// <summary>AdamW decoupled weight decay for the decayed group (default 0.05).</summary>
    public double WeightDecay { get; set; } = 0.05;

    public double Beta1 { get; set; } = 0.9;
    public double Beta2 { get; set; }
    /// <summary>AdamW epsilon (PyTorch's default 1e-8).</summary>
    public double Epsilon { get; set; } = 1e-8;

    /// <summary>Seed for libtorch's generators at the start of a fresh run (reference default 0).</summary>
    public long Seed { get; set; }

    public MaeDevice Device { get; set; } = MaeDevice.Auto;

    /// <summary>libtorch intra-op threads during training (the previous setting is restored afterwards); <c>null</c>
    /// leaves the process setting alone. CPU results repeat bit for bit only with the same thread count.</summary>
    public int? Threads { get; set; }

    public MaePrecision Precision { get; set; } = MaePrecision.Fp32;

    /// <summary>Folder for checkpoints; <c>null</c> writes none.</summary>
    public string? CheckpointDir { get; set; }

    /// <summary>Write a checkpoint every this many epochs (and always after the last one).</summary>
    public int CheckpointEvery { get; set; }

    /// <summary>Continue from the latest checkpoint in <see cref="CheckpointDir"/> when there is one.</summary>
    public bool Resume { get; set; }

    /// <summary>With <see cref="Resume"/>: refuse to start when <see cref="CheckpointDir"/> holds no checkpoint (a
    /// <see cref="MaeRunFolderException"/>, <see cref="MaeRunFolderException.Problem.NothingToResume"/>, naming the folder) instead of starting from the first epoch — for a
    /// requeued job, where starting over in the wrong folder would silently discard its work.</summary>
    public bool RequireResume { get; set; }

    /// <summary>Append one JSON line of metrics (epoch, step, global_step, loss, lr, images_per_s, eta_s, elapsed_s, time)
    /// per <see cref="LogEvery"/> steps to this file, flushed per line; <c>null</c>: none. A fresh run starts the
    /// file anew; a resumed run keeps the lines up to the checkpoint's step and drops those a killed run logged after it.</summary>
    public string? MetricsFile { get; set; }

    /// <summary>Report progress / metrics every this many steps.</summary>
    public int LogEvery { get; set; }

    /// <summary>Write TensorBoard event files (train_loss, lr against epoch×1000, as the reference) to this folder.</summary>
    public string? TensorBoardDir { get; set; }

    /// <summary>
    /// Data-parallel training over the ranks of this collective (<see cref="MaeCollective.ForDevice"/> under
    /// <c>mpirun</c> or <c>srun</c>); null: one process. <see cref="BatchSize"/> is then the global batch of a step, each
    /// rank reads <c>BatchSize / WorldSize</c> images of its shard of the epoch, gradients are averaged before every AdamW
    /// step, the epoch order and masking noise come from (seed, epoch, position), and libtorch's generator restarts for
    /// every micro-batch from (seed, epoch, micro-batch) (augmentation, mixup, drop path), so W ranks take the steps one
    /// process accumulating W batches takes and no two ranks repeat a random stream. Set the collective in one process
    /// too (<see cref="MaeCollective.Single"/>, what ForDevice gives there) for a run that equals the ranks' runs.
    /// Rank 0 alone writes checkpoints, metrics, TensorBoard and progress; a failure on one rank alone ends every rank.
    /// </summary>
    [JsonIgnore]
    public IMaeCollective? Collective { get; set; }

    /// <summary>
    /// A time box (<see cref="MaeTimeBudget.Plan"/>; null: none). <see cref="Epochs"/> and <see cref="WarmupEpochs"/> are
    /// the plan's start; at each epoch end the run re-fits the epochs still to run to the time left until the plan's
    /// <see cref="MaeTimeBudget.TimePlan.DeadlineUtc"/> at the recent pace (<see cref="MaeTimeBudget"/>: the median of the
    /// last 3 epochs; at most the plan's
    /// <see cref="MaeTimeBudget.TimePlan.Cap"/>), stretching or squeezing the rest of the cosine so the lr stays continuous
    /// and reaches its floor at the new end. Its checkpoints store that schedule and a resume continues it. One process
    /// only (ranks would time different epochs).
    /// </summary>
    [JsonIgnore]
    public MaeTimeBudget.TimePlan? TimePlan { get; set; }

    /// <summary>The clock <see cref="TimePlan"/> is read against (tests: a scripted one); null: <see cref="DateTime.UtcNow"/>.</summary>
    [JsonIgnore]
    internal Func<DateTime>? Clock { get; set; }

    /// <summary>Effective batch per optimizer step, <see cref="BatchSize"/> × <see cref="AccumIter"/>.</summary>
    [JsonIgnore]
    public long EffectiveBatchSize => (long)BatchSize * AccumIter;

    /// <summary>Peak learning rate: <see cref="LearningRate"/> if set, else <c>BaseLearningRate × effective batch / 256</c>.</summary>
    [JsonIgnore]
    public double PeakLearningRate => LearningRate ?? BaseLearningRate * EffectiveBatchSize / 256.0;

    /// <summary>Checks the shared recipe; throws <see cref="ArgumentException"/> (or a subclass) naming the setting,
    /// the expected range and the actual value. Each task's <c>Validate</c> calls it first.</summary>
    protected void ValidateRecipe()
    {
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
        if (!Enum.IsDefined(Precision)) throw new ArgumentOutOfRangeException(nameof(Precision), Precision, "Precision must be Fp32, Bf16 or Auto.");
        if (CheckpointEvery < 1) throw new ArgumentOutOfRangeException(nameof(CheckpointEvery), CheckpointEvery, $"CheckpointEvery must be at least 1; got {CheckpointEvery}.");
        if (Resume && string.IsNullOrWhiteSpace(CheckpointDir))
            throw new ArgumentException("Resume is set but CheckpointDir is empty: resuming needs the folder that holds the checkpoints.", nameof(CheckpointDir));
        if (RequireResume && !Resume)
            throw new ArgumentException("RequireResume is set but Resume is not: set both to refuse a run with nothing to resume.", nameof(RequireResume));
        if (LogEvery < 1) throw new ArgumentOutOfRangeException(nameof(LogEvery), LogEvery, $"LogEvery must be at least 1; got {LogEvery}.");
        if (TimePlan is { } plan && Epochs > plan.Cap)
            throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, $"Epochs ({Epochs}) must not exceed the time plan's cap ({plan.Cap}).");
        if (TimePlan is not null && Collective is { WorldSize: > 1 })
            throw new ArgumentException($"A time plan re-fits one process's epochs to its own pace; with {Collective.WorldSize} ranks give Epochs instead.", nameof(TimePlan));
    }

    /// <summary>Data-parallel over MPI: the number of block groups whose gradients are all-reduced while backward still
    /// runs (≤ 1, the default: one all-reduce after backward). Off by default: on 2 CPU ranks of a quiet 2-core machine
    /// the split backward cost 4–9 % per step in 3 of 4 runs and hid nothing (docs/scaling.md, "Overlap"); it waits for
    /// a cluster measurement that shows a gain. Internal: tests and benchmarks turn it on.</summary>
    internal int OverlapGroups { get; set; } = 1;
    /// <summary>Benchmarks only: overlap the steps for which this says true (null: all), to compare both in one run.</summary>
    internal Func<long, bool>? OverlapAt { get; set; }

    /// <summary>A task recipe's schedule (<c>MaePretrainRecipe</c>, <c>MaeFineTuneRecipe</c>): batch, base lr (clearing an
    /// absolute one), epochs and warm-up, written in one place for both.</summary>
    internal void ApplySchedule(int batchSize, double baseLearningRate, int epochs, double warmupEpochs)
    {
        BatchSize = batchSize;
        BaseLearningRate = baseLearningRate;
        LearningRate = null;
        Epochs = epochs;
        WarmupEpochs = warmupEpochs;
    }

    /// <summary>THE one copy of the recipe into the engine's settings; a task adds only what is its own
    /// (<paramref name="clipGradNorm"/>: fine-tuning's gradient clipping).</summary>
    internal MaeEngineSettings EngineSettings(TorchSharp.DeviceType device, double? clipGradNorm = null) => new()
    {
        BatchSize = BatchSize, AccumIter = AccumIter, Epochs = Epochs, PeakLearningRate = PeakLearningRate,
        MinLearningRate = MinLearningRate, WarmupEpochs = WarmupEpochs, Beta1 = Beta1, Beta2 = Beta2, Epsilon = Epsilon,
        ClipGradNorm = clipGradNorm, Seed = Seed, LogEvery = LogEvery, CheckpointEvery = CheckpointEvery,
        CheckpointDir = CheckpointDir, Resume = Resume, RequireResume = RequireResume, MetricsFile = MetricsFile, TensorBoardDir = TensorBoardDir,
        ComputeDType = Precision.ComputeDType(device), Collective = Collective, OverlapGroups = OverlapGroups, OverlapAt = OverlapAt,
        TimeBox = TimePlan is { } plan ? new MaeTimeBox(plan.DeadlineUtc, plan.Cap, Clock ?? (() => DateTime.UtcNow)) : null,
    };
}
