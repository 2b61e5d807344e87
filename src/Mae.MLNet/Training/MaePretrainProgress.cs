namespace Mae.MLNet.Training;

/// <summary>One progress report of pre-training (<see cref="MaeTrainingProgress"/>), the end-of-epoch one with the kNN
/// monitor's accuracies when it ran.</summary>
public sealed record MaePretrainProgress : MaeTrainingProgress
{
    /// <summary>The kNN monitor's accuracies after this epoch (end-of-epoch reports), or null.</summary>
    public Evaluation.MaeKnnResult? Knn { get; init; }
}

/// <summary>What a pre-training run produced (<see cref="MaeTrainingResult"/>), with the kNN monitor's results.</summary>
public sealed record MaePretrainResult : MaeTrainingResult
{
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
