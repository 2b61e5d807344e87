using Mae.MLNet.Training;

namespace Mae.MLNet.FineTuning;

/// <summary>One progress report of fine-tuning (<see cref="MaeTrainingProgress"/>). Step reports have no validation
/// figures; the report that ends an epoch (<see cref="MaeTrainingProgress.EndOfEpoch"/>) carries them when a
/// validation source was given.</summary>
public sealed record MaeFineTuneProgress : MaeTrainingProgress
{
    /// <summary>Mean training loss of the epoch (end-of-epoch reports).</summary>
    public double? EpochLoss { get; init; }
    /// <summary>Top-1 accuracy on the validation source after this epoch (end-of-epoch reports with validation).</summary>
    public double? ValidationAccuracy { get; init; }
    /// <summary>Plain cross entropy on the validation source (as the reference's evaluate).</summary>
    public double? ValidationLoss { get; init; }
    /// <summary>0-based epoch with the best validation accuracy so far.</summary>
    public int? BestEpoch { get; init; }
}

/// <summary>What a fine-tuning run (or an attentive probe's training) produced (<see cref="MaeTrainingResult"/>), with
/// its validation history and best epoch.</summary>
public sealed record MaeFineTuneResult : MaeTrainingResult
{
    /// <summary>Validation top-1 accuracy per epoch (empty without a validation source).</summary>
    public IReadOnlyList<double> ValidationAccuracies { get; init; } = Array.Empty<double>();
    public IReadOnlyList<double> ValidationLosses { get; init; } = Array.Empty<double>();
    /// <summary>0-based epoch whose weights the model holds when <see cref="MaeFineTuneOptions.KeepBestWeights"/> applied.</summary>
    public int? BestEpoch { get; init; }
    public double? BestValidationAccuracy { get; init; }
    /// <summary>True when the model was reset to the best epoch's weights at the end.</summary>
    public bool RestoredBestWeights { get; init; }
    /// <summary>Image files left out (<see cref="Input.MaeImageInputOptions.SkipBadFiles"/>), training and validation
    /// together, when the trainer read a path or bytes column; empty otherwise.</summary>
    public IReadOnlyList<Input.MaeImageFileSource.SkippedFile> SkippedFiles { get; init; } = Array.Empty<Input.MaeImageFileSource.SkippedFile>();
}
