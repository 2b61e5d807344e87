using Mae.MLNet.Evaluation;
using Mae.MLNet.Training;
namespace Mae.MLNet.Pretraining;

/// <summary>One progress report of pre-training (<see cref="MaeTrainingProgress"/>), the end-of-epoch one with the kNN
/// monitor's accuracies when it ran.</summary>
public sealed record MaePretrainProgress : MaeTrainingProgress
{
    /// <summary>The kNN monitor's accuracies after this epoch (end-of-epoch reports), or null.</summary>
    public Evaluation.MaeKnnProbe.Result? Knn { get; init; }
}

/// <summary>What a pre-training run produced (<see cref="MaeTrainingResult"/>), with the kNN monitor's results.</summary>
public sealed record MaePretrainResult : MaeTrainingResult
{
    /// <summary>The kNN monitor's results by epoch (0-based), empty without one.</summary>
    public IReadOnlyList<(int Epoch, Evaluation.MaeKnnProbe.Result Result)> KnnResults { get; init; } = Array.Empty<(int, Evaluation.MaeKnnProbe.Result)>();
}
