namespace Mae.MLNet.FineTuning;

/// <summary>One progress report of fine-tuning. Step reports have no validation figures; the report that ends an
/// epoch (<see cref="EndOfEpoch"/>) carries them when a validation source was given.</summary>
public sealed record MaeFineTuneProgress
{
    public int Epoch { get; init; }
    public int Epochs { get; init; }
    /// <summary>0-based batch index within the epoch.</summary>
    public long Step { get; init; }
    public long StepsPerEpoch { get; init; }
    public long GlobalStep { get; init; }
    /// <summary>The batch's training loss (before the division by the accumulation count).</summary>
    public double Loss { get; init; }
    /// <summary>The peak-layer learning rate used for this batch (the reference logs the max over groups).</summary>
    public double LearningRate { get; init; }
    public double ImagesPerSecond { get; init; }
    public TimeSpan Eta { get; init; }
    public TimeSpan Elapsed { get; init; }
    /// <summary>True for the one report per epoch that follows its validation.</summary>
    public bool EndOfEpoch { get; init; }
    /// <summary>Mean training loss of the epoch (end-of-epoch reports).</summary>
    public double? EpochLoss { get; init; }
    /// <summary>Top-1 accuracy on the validation source after this epoch (end-of-epoch reports with validation).</summary>
    public double? ValidationAccuracy { get; init; }
    /// <summary>Plain cross entropy on the validation source (as the reference's evaluate).</summary>
    public double? ValidationLoss { get; init; }
    /// <summary>0-based epoch with the best validation accuracy so far.</summary>
    public int? BestEpoch { get; init; }

    /// <summary>A step report of the training engine (fine-tuning and the attentive probe report alike).</summary>
    internal static MaeFineTuneProgress From(Training.MaeStepReport r) => new()
    {
        Epoch = r.Epoch, Epochs = r.Epochs, Step = r.Step, StepsPerEpoch = r.StepsPerEpoch, GlobalStep = r.GlobalStep,
        Loss = r.Loss, LearningRate = r.LearningRate, ImagesPerSecond = r.ImagesPerSecond, Eta = r.Eta, Elapsed = r.Elapsed,
    };
}

/// <summary>What a fine-tuning run produced.</summary>
public sealed record MaeFineTuneResult
{
    public required IReadOnlyList<float> StepLosses { get; init; }
    public required IReadOnlyList<double> EpochLosses { get; init; }
    /// <summary>Validation top-1 accuracy per epoch (empty without a validation source).</summary>
    public required IReadOnlyList<double> ValidationAccuracies { get; init; }
    public required IReadOnlyList<double> ValidationLosses { get; init; }
    /// <summary>0-based epoch whose weights the model holds when <see cref="MaeFineTuneOptions.KeepBestWeights"/> applied.</summary>
    public int? BestEpoch { get; init; }
    public double? BestValidationAccuracy { get; init; }
    /// <summary>True when the model was reset to the best epoch's weights at the end.</summary>
    public bool RestoredBestWeights { get; init; }
    public int EpochsCompleted { get; init; }
    public long GlobalSteps { get; init; }
    public long OptimizerSteps { get; init; }
    public long StepsPerEpoch { get; init; }
    public double PeakLearningRate { get; init; }
    public string? ResumedFrom { get; init; }
    public string? LastCheckpoint { get; init; }
    public TimeSpan Elapsed { get; init; }
    /// <summary>Data-parallel runs: time this rank spent in the gradient all-reduces.</summary>
    public TimeSpan AllReduceTime { get; init; }
}
