using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>The settings the engine reads from a task's options (pre-training and fine-tuning map theirs onto it).</summary>
internal sealed record MaeEngineSettings
{
    public required int BatchSize { get; init; }
    public required int AccumIter { get; init; }
    public required int Epochs { get; init; }
    public required double PeakLearningRate { get; init; }
    public required double MinLearningRate { get; init; }
    public required double WarmupEpochs { get; init; }
    public required double Beta1 { get; init; }
    public required double Beta2 { get; init; }
    public required double Epsilon { get; init; }
    public double? ClipGradNorm { get; init; }
    public required long Seed { get; init; }
    public required int LogEvery { get; init; }
    public required int CheckpointEvery { get; init; }
    public string? CheckpointDir { get; init; }
    public bool Resume { get; init; }
    public bool RequireResume { get; init; }
    public string? MetricsFile { get; init; }
    public string? TensorBoardDir { get; init; }
    /// <summary>Reduced-precision compute dtype of the matrix work (null: fp32).</summary>
    public ScalarType? ComputeDType { get; init; }
    /// <summary>Benchmarks only: TorchSharp's per-parameter AdamW, casts per layer call and a loss read every step
    /// (how the loop worked before the flat buffer), to measure the difference in one run.</summary>
    public bool LegacyStep { get; init; }
    /// <summary>Data-parallel over MPI: block groups whose gradients are all-reduced while backward runs (≤ 1, the
    /// default: one all-reduce after backward; see <see cref="OverlapPlan"/>).</summary>
    public int OverlapGroups { get; init; } = 1;
    /// <summary>Benchmarks only: whether the step with this global index overlaps (null: every step), to compare both
    /// in one run.</summary>
    public Func<long, bool>? OverlapAt { get; init; }
    /// <summary>Data-parallel training (null: one process, as before): gradients averaged over the ranks before each
    /// optimizer step, rank 0 alone writes checkpoints, metrics, TensorBoard and progress.</summary>
    public IMaeCollective? Collective { get; init; }
    /// <summary>A time box (null: none): the epochs re-fitted at each epoch end to the time left (<see cref="MaeLrPlan"/>).</summary>
    public MaeTimeBox? TimeBox { get; init; }
}

/// <summary>When a time-boxed run must end, the most epochs it may plan, and the clock it reads (tests give their own).</summary>
internal sealed record MaeTimeBox(DateTime DeadlineUtc, int MaxEpochs, Func<DateTime> Clock);

/// <summary>The engine's counters and histories, handed to the hooks.</summary>
internal sealed class MaeTrainingState
{
    public int StartEpoch;
    /// <summary>The epochs the run ends at: the settings' unless a time box re-fitted them (or the resumed checkpoint's plan).</summary>
    public int Epochs;
    public long GlobalStep, OptimizerSteps, StepsPerEpoch;
    public List<float> StepLosses = new();
    public List<double> EpochLosses = new();
    public string? ResumedFrom, LastCheckpoint;
    public TimeSpan Elapsed;
    /// <summary>Rank 0 of a data-parallel run (or the only process): the one that reports and writes files.</summary>
    public bool IsLead = true;
    /// <summary>Time spent in the gradient all-reduces (data-parallel runs).</summary>
    public TimeSpan AllReduceTime;
}

/// <summary>What the engine reports every <c>LogEvery</c> steps and at the end of each epoch.</summary>
internal readonly record struct MaeStepReport(int Epoch, int Epochs, long Step, long StepsPerEpoch, long GlobalStep, double Loss,
    double LearningRate, double ImagesPerSecond, TimeSpan Eta, TimeSpan Elapsed);

/// <summary>
/// The parts of a training run that differ between pre-training and fine-tuning; <see cref="MaeTrainingEngine"/>
/// owns the rest (device, threads, resume, optimizer, accumulation, lr schedule, logging, checkpoints, non-finite
/// check). <typeparamref name="TBatch"/> is what the task's data yields per step.
/// </summary>
internal abstract class MaeTrainingTask<TBatch>
{
    public abstract nn.Module Model { get; }
    /// <summary>The optimizer's parameter groups (trainable parameters only), after the model is on the device.</summary>
    public abstract IReadOnlyList<MaeParamGroup> ParamGroups();
    /// <summary>Sets the compute precision and anything else the model needs before it moves to the device.</summary>
    public abstract void PrepareModel(ScalarType? computeDType);
    /// <summary>One epoch's batches (drawn lazily: the generator state at the first MoveNext counts), from batch
    /// <paramref name="skipBatches"/> on (non-zero only when <see cref="CanSkipBatches"/>).</summary>
    public abstract IEnumerable<TBatch> Batches(int epoch, Device device, long skipBatches);
    /// <summary>Whether <see cref="Batches"/> can start inside an epoch and yield exactly what an uninterrupted epoch
    /// yields from there (sources that follow the epoch plan): a stopped run then checkpoints its position.</summary>
    public virtual bool CanSkipBatches => false;
    /// <summary>The scalar loss of one batch (the engine backpropagates it); called inside the step's dispose scope.</summary>
    public abstract Tensor Loss(TBatch batch, Device device);
    /// <summary>Disposes what <see cref="Batches"/> handed over.</summary>
    public abstract void Release(TBatch batch);
    /// <summary>What the source promised for the "yielded more/fewer batches" messages.</summary>
    public abstract string DataDescription { get; }
    /// <summary>TensorBoard tag of the per-step loss (the reference: "train_loss" in pre-training, "loss" in fine-tuning).</summary>
    public abstract string LossTag { get; }

    public virtual void Report(MaeStepReport report) { }
    /// <summary>After each epoch's last step (validation, best weights, an end-of-epoch report).</summary>
    public virtual void EndOfEpoch(int epoch, MaeTrainingState state, MaeStepReport report, Action<string, double, int>? tensorBoard) { }

    // Checkpoints: the task's file kind, header and extras; the engine writes model, optimizer, generator, history.
    public abstract MaeTrainingCheckpoint Checkpoint { get; }
    /// <summary>Checks a resumed checkpoint's header against this run (config, counts); throws if it does not fit.</summary>
    public abstract void CheckResume(string path, MaeTrainingCheckpointHeader header, long stepsPerEpoch, int epochs);
    public abstract MaeTrainingCheckpointHeader CreateHeader(MaeTrainingState state, int epochsCompleted);
    public virtual void WriteExtras(BinaryWriter w) { }
    public virtual void ReadExtras(BinaryReader r, int formatVersion) { }
}
