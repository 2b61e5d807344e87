namespace Mae.MLNet.Training;

/// <summary>One progress report: where training is, the current loss and learning rate, throughput and ETA.</summary>
public sealed record MaePretrainProgress
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
    /// <summary>The learning rate the optimizer used for this batch.</summary>
    public double LearningRate { get; init; }
    /// <summary>Images per second over the current epoch so far.</summary>
    public double ImagesPerSecond { get; init; }
    /// <summary>Estimated time to the end of the run at the current epoch's pace.</summary>
    public TimeSpan Eta { get; init; }
    /// <summary>Wall time since this call to Train started.</summary>
    public TimeSpan Elapsed { get; init; }
    /// <summary>The end-of-epoch report (after the epoch's last step report) — with <see cref="Knn"/> when the kNN
    /// monitor ran.</summary>
    public bool EndOfEpoch { get; init; }
    /// <summary>The kNN monitor's accuracies after this epoch, or null.</summary>
    public Evaluation.MaeKnnResult? Knn { get; init; }
}

/// <summary>What a training run produced.</summary>
public sealed record MaePretrainResult
{
    /// <summary>Every batch's loss in order, across all epochs (including those before a resume).</summary>
    public required IReadOnlyList<float> StepLosses { get; init; }
    /// <summary>Mean batch loss of each epoch.</summary>
    public required IReadOnlyList<double> EpochLosses { get; init; }
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
    /// <summary>The kNN monitor's results by epoch (0-based), empty without one.</summary>
    public IReadOnlyList<(int Epoch, Evaluation.MaeKnnResult Result)> KnnResults { get; init; } = Array.Empty<(int, Evaluation.MaeKnnResult)>();
}

/// <summary>Thrown when a batch's loss is NaN or infinite; training stops as the reference's
/// <c>if not math.isfinite(loss_value)</c> does.</summary>
public sealed class MaeNonFiniteLossException : InvalidOperationException
{
    public MaeNonFiniteLossException(int epoch, long step, long globalStep, double loss)
        : base($"Loss is {loss} at epoch {epoch}, step {step} (global step {globalStep}); stopping training. " +
               "Lower the learning rate, check the input data for extreme values, or use fp32.")
    {
        Epoch = epoch;
        Step = step;
        GlobalStep = globalStep;
        Loss = loss;
    }

    public int Epoch { get; }
    public long Step { get; }
    public long GlobalStep { get; }
    public double Loss { get; }
}
