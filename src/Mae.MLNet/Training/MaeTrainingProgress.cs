namespace Mae.MLNet.Training;

/// <summary>What every training run reports per step (pre-training's <see cref="Pretraining.MaePretrainProgress"/>, fine-tuning's
/// and the attentive probe's <c>MaeFineTuneProgress</c>): where it is, the loss and learning rate, throughput, ETA.</summary>
public abstract record MaeTrainingProgress
{
    /// <summary>0-based epoch.</summary>
    public int Epoch { get; init; }
    public int Epochs { get; init; }
    /// <summary>0-based batch index within the epoch.</summary>
    public long Step { get; init; }
    public long StepsPerEpoch { get; init; }
    /// <summary>Batches processed in the whole run, this one included.</summary>
    public long GlobalStep { get; init; }
    /// <summary>The batch's loss (before the division by the accumulation count).</summary>
    public double Loss { get; init; }
    /// <summary>The learning rate the optimizer used for this batch (the peak layer's with layer decay, as the reference logs).</summary>
    public double LearningRate { get; init; }
    /// <summary>Images per second over the current epoch so far.</summary>
    public double ImagesPerSecond { get; init; }
    /// <summary>Estimated time to the end of the run at the current epoch's pace.</summary>
    public TimeSpan Eta { get; init; }
    /// <summary>Wall time since this call to Train started.</summary>
    public TimeSpan Elapsed { get; init; }
    /// <summary>The one report per epoch that follows its last step (and its evaluation, where the run has one).</summary>
    public bool EndOfEpoch { get; init; }

    /// <summary>The engine's step report as the caller's progress record.</summary>
    internal static T From<T>(MaeStepReport r) where T : MaeTrainingProgress, new() => new()
    {
        Epoch = r.Epoch, Epochs = r.Epochs, Step = r.Step, StepsPerEpoch = r.StepsPerEpoch, GlobalStep = r.GlobalStep,
        Loss = r.Loss, LearningRate = r.LearningRate, ImagesPerSecond = r.ImagesPerSecond, Eta = r.Eta, Elapsed = r.Elapsed,
    };
}

/// <summary>What every training run produced (pre-training's <see cref="Pretraining.MaePretrainResult"/>, fine-tuning's
/// <c>MaeFineTuneResult</c>).</summary>
public abstract record MaeTrainingResult
{
    /// <summary>Every batch's loss in order, across all epochs (including those before a resume).</summary>
    public IReadOnlyList<float> StepLosses { get; init; } = Array.Empty<float>();
    /// <summary>Mean batch loss of each epoch.</summary>
    public IReadOnlyList<double> EpochLosses { get; init; } = Array.Empty<double>();
    public int EpochsCompleted { get; init; }
    public long GlobalSteps { get; init; }
    public long OptimizerSteps { get; init; }
    public long StepsPerEpoch { get; init; }
    /// <summary>The peak learning rate (after the batch-size scaling).</summary>
    public double PeakLearningRate { get; init; }
    /// <summary>The checkpoint this run resumed from, if any.</summary>
    public string? ResumedFrom { get; init; }
    /// <summary>The last checkpoint written, if any.</summary>
    public string? LastCheckpoint { get; init; }
    public TimeSpan Elapsed { get; init; }
    /// <summary>Data-parallel runs: time this rank spent in the gradient all-reduces.</summary>
    public TimeSpan AllReduceTime { get; init; }

    /// <summary>The engine's final state as the caller's result record (the task adds its own fields with <c>with</c>).</summary>
    internal static T From<T>(MaeTrainingState state, long stepsPerEpoch, double peakLearningRate)
        where T : MaeTrainingResult, new() => new()
    {
        StepLosses = state.StepLosses, EpochLosses = state.EpochLosses, EpochsCompleted = state.Epochs, GlobalSteps = state.GlobalStep,
        OptimizerSteps = state.OptimizerSteps, StepsPerEpoch = stepsPerEpoch, PeakLearningRate = peakLearningRate,
        ResumedFrom = state.ResumedFrom, LastCheckpoint = state.LastCheckpoint, Elapsed = state.Elapsed, AllReduceTime = state.AllReduceTime,
    };
}
