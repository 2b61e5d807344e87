namespace Mae.MLNet.Evaluation;

public static partial class MaeLinearProbe
{
    /// <summary>One candidate tried and its held-out accuracy.</summary>
    public readonly record struct Trial<T>(T Candidate, double Accuracy);

    /// <summary>The chosen candidate and every trial in the order made.</summary>
    public sealed record Choice<T>(T Chosen, IReadOnlyList<Trial<T>> Trials);

    /// <summary>
    /// Chooses a probe's setting (this probe's L2, an attentive probe's pooler) on held-out training rows, never on the
    /// test rows: <paramref name="candidates"/> are tried in order (<paramref name="heldOutAccuracy"/> fits a probe with
    /// one on the rows kept for fitting and returns its accuracy on the held-out rows), a tie keeps the earlier one, and
    /// the first fall of the held-out accuracy ends the search — so put the cheapest or most conservative candidate
    /// first (the strongest L2: the weak ones fit slowest).
    /// </summary>
    public static Choice<T> ChooseOnHeldOut<T>(IReadOnlyList<T> candidates, Func<T, double> heldOutAccuracy)
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
        return new Choice<T>(chosen, trials);
    }
}
