namespace Mae.MLNet.Evaluation;

/// <summary>
/// Chooses a probe's setting (an L2, a pooler) on held-out training rows, never on the test rows: the candidates are
/// tried in order, a tie keeps the earlier one, and the first fall of the held-out accuracy ends the search — so put
/// the cheapest or most conservative candidate first (the strongest L2: the weak ones fit slowest).
/// </summary>
public static class MaeHeldOutChoice
{
    /// <summary>One candidate tried and its held-out accuracy.</summary>
    public readonly record struct Trial<T>(T Candidate, double Accuracy);

    /// <summary>The chosen candidate and every trial in the order made.</summary>
    public sealed record Result<T>(T Chosen, IReadOnlyList<Trial<T>> Trials);

    /// <summary>Tries <paramref name="candidates"/> in order; <paramref name="heldOutAccuracy"/> fits a probe with one on
    /// the rows kept for fitting and returns its accuracy on the held-out rows.</summary>
    public static Result<T> Choose<T>(IReadOnlyList<T> candidates, Func<T, double> heldOutAccuracy)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(heldOutAccuracy);
        if (candidates.Count == 0) throw new ArgumentException("At least one candidate is needed.", nameof(candidates));
        T chosen = candidates[0];
        double best = double.NegativeInfinity;
        var trials = new List<Trial<T>>();
        foreach (var candidate in candidates)
        {
            double accuracy = heldOutAccuracy(candidate);
            if (double.IsNaN(accuracy)) throw new ArgumentException($"The held-out accuracy of candidate {candidate} is NaN.", nameof(heldOutAccuracy));
            trials.Add(new Trial<T>(candidate, accuracy));
            if (accuracy < best) break;
            if (accuracy > best) (best, chosen) = (accuracy, candidate);
        }
        return new Result<T>(chosen, trials);
    }
}
