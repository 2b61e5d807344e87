using Mae.MLNet.Evaluation;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet.Tests.Evaluation;

/// <summary>The linear probe reaches the closed-form best accuracy of a problem whose answer is known, chooses its L2 on
/// held-out rows as <see cref="MaeLinearProbe.ChooseOnHeldOut{T}"/> says, and names every bad input.</summary>
[TestClass]
public class MaeLinearProbeTest
{
    const int Width = 8;

    public sealed class Row
    {
        [VectorType(Width)] public float[] Features { get; set; } = Array.Empty<float>();
        public string Label { get; set; } = "";
        public float Scalar { get; set; }
    }

    /// <summary>Two classes, equally likely, unit-variance Gaussians whose means differ by <paramref name="distance"/> along
    /// the first axis and agree on the other 7 (noise, on scales from 1 to 1 000, which the standardisation must undo):
    /// the best any classifier can do is Φ(distance / 2).</summary>
    static List<Row> Gaussians(int n, double distance, int seed)
    {
        var rng = new Random(seed);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        return Enumerable.Range(0, n).Select(_ =>
        {
            bool b = rng.Next(2) == 1;
            var f = new float[Width];
            f[0] = (float)(Normal() + (b ? distance / 2 : -distance / 2));
            for (int j = 1; j < Width; j++) f[j] = (float)(Normal() * Math.Pow(10, j % 4) + 5);
            return new Row { Features = f, Label = b ? "b" : "a" };
        }).ToList();
    }

    /// <summary>Φ(x), the standard normal CDF, by the Abramowitz–Stegun 7.1.26 erf (|error| ≤ 1.5e-7).</summary>
    static double Phi(double x)
    {
        double z = Math.Abs(x) / Math.Sqrt(2), t = 1 / (1 + 0.3275911 * z);
        double erf = 1 - t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.Exp(-z * z);
        return 0.5 * (1 + (x < 0 ? -erf : erf));
    }

    [TestMethod]
    public void ReachesTheBayesAccuracyOfTwoGaussians()
    {
        var ml = new MLContext(seed: 0);
        var result = MaeLinearProbe.Evaluate(ml.Data.LoadFromEnumerable(Gaussians(4000, 2, 1)), ml.Data.LoadFromEnumerable(Gaussians(4000, 2, 2)));
        double bayes = Phi(1);   // 0.8413
        // 4 000 test rows: one standard error of the accuracy is 0.6 point; the fitted line loses little to the best one.
        Assert.AreEqual(bayes, result.Accuracy, 0.02, result.ToString());
        Assert.IsTrue(result.HeldOut.Count >= 2, "more than one L2 tried");
        CollectionAssert.Contains(MaeLinearProbe.Options.DefaultL2PerRow.ToArray(), result.L2PerRow);
        double best = result.HeldOut.Max(t => t.Accuracy);
        Assert.AreEqual(result.HeldOut.First(t => t.Accuracy == best).Candidate, result.L2PerRow, "the held-out trail's best, the earliest on a tie");

        // The same rows give the same figures (a fixed chunk count, not the machine's cores).
        var again = MaeLinearProbe.Evaluate(ml.Data.LoadFromEnumerable(Gaussians(4000, 2, 1)), ml.Data.LoadFromEnumerable(Gaussians(4000, 2, 2)));
        Assert.AreEqual(result.Accuracy, again.Accuracy);
        Assert.AreEqual(result.L2PerRow, again.L2PerRow);

        // Views the caller cached already, read as they are (CacheInputs false): the same figures as the probe's own cache.
        var cachedTrain = ml.Data.Cache(ml.Data.LoadFromEnumerable(Gaussians(4000, 2, 1)));
        var uncopied = MaeLinearProbe.Evaluate(cachedTrain, ml.Data.Cache(ml.Data.LoadFromEnumerable(Gaussians(4000, 2, 2))),
            options: new MaeLinearProbe.Options { CacheInputs = false });
        Assert.AreEqual(result.Accuracy, uncopied.Accuracy);
        CollectionAssert.AreEqual(result.HeldOut.ToArray(), uncopied.HeldOut.ToArray());

        // Classes that do not differ: chance, whatever the L2.
        var chance = MaeLinearProbe.Evaluate(ml.Data.LoadFromEnumerable(Gaussians(2000, 0, 3)), ml.Data.LoadFromEnumerable(Gaussians(4000, 0, 4)));
        Assert.AreEqual(0.5, chance.Accuracy, 0.03, chance.ToString());
    }

    [TestMethod]
    public void TheChoiceTakesTheHeldOutPeakAndStopsAtTheFirstFall()
    {
        var accuracy = new Dictionary<double, double> { [1] = 0.50, [0.1] = 0.60, [0.01] = 0.60, [1e-3] = 0.55, [1e-4] = 0.90 };
        var asked = new List<double>();
        var result = MaeLinearProbe.ChooseOnHeldOut(new[] { 1, 0.1, 0.01, 1e-3, 1e-4 }, l2 => { asked.Add(l2); return accuracy[l2]; });
        Assert.AreEqual(0.1, result.Chosen, "a tie keeps the earlier (stronger) candidate");
        CollectionAssert.AreEqual(new[] { 1, 0.1, 0.01, 1e-3 }, asked, "the fall at 1e-3 ends the search: 1e-4 is never fitted");
        CollectionAssert.AreEqual(asked, result.Trials.Select(t => t.Candidate).ToArray());

        Assert.AreEqual("x", MaeLinearProbe.ChooseOnHeldOut(new[] { "x" }, _ => 0).Chosen);
        Assert.ThrowsExactly<ArgumentException>(() => MaeLinearProbe.ChooseOnHeldOut(Array.Empty<double>(), _ => 0));
        var nan = Assert.ThrowsExactly<ArgumentException>(() => MaeLinearProbe.ChooseOnHeldOut(new[] { 7.0 }, _ => double.NaN));
        StringAssert.Contains(nan.Message, "candidate 7");
    }

    [TestMethod]
    public void BadInputIsNamed()
    {
        var ml = new MLContext(seed: 0);
        var rows = Gaussians(40, 2, 5);
        var good = ml.Data.LoadFromEnumerable(rows);

        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeLinearProbe.Evaluate(good, good, "Pixels"));
        StringAssert.Contains(missing.Message, "Feature column 'Pixels' was not found in the train data");
        StringAssert.Contains(missing.Message, "'Features'");
        var scalar = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeLinearProbe.Evaluate(good, good, "Scalar"));
        StringAssert.Contains(scalar.Message, "expects a known-size vector of Single");
        var label = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeLinearProbe.Evaluate(good, good, labelColumnName: "Class"));
        StringAssert.Contains(label.Message, "Label column 'Class' was not found");

        var withNan = Gaussians(40, 2, 6);
        withNan[17].Features[3] = float.NaN;
        var nan = Assert.ThrowsExactly<ArgumentException>(() => MaeLinearProbe.Evaluate(good, ml.Data.LoadFromEnumerable(withNan)));
        StringAssert.Contains(nan.Message, "of the test data holds NaN at row 17, value 3");

        var vectorLabel = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeLinearProbe.Evaluate(good, good, "Features", labelColumnName: "Features"));
        StringAssert.Contains(vectorLabel.Message, "expects one label per row");

        // A test label no training row has could never be predicted; ML.NET's evaluation would skip its row without a word
        // (a test set half of unseen classes then scored 100 %), so it is named instead.
        var unseen = Gaussians(40, 2, 7);
        unseen[7].Label = "c";
        var unseenError = Assert.ThrowsExactly<ArgumentException>(() => MaeLinearProbe.Evaluate(good, ml.Data.LoadFromEnumerable(unseen)));
        StringAssert.Contains(unseenError.Message, "of the test data holds 'c' at row 7, which no training row has (the training data has 2 labels)");
        var unlabelled = Gaussians(40, 2, 8);
        unlabelled[3].Label = "";
        var missingError = Assert.ThrowsExactly<ArgumentException>(() => MaeLinearProbe.Evaluate(ml.Data.LoadFromEnumerable(unlabelled), good));
        StringAssert.Contains(missingError.Message, "of the train data has no value at row 3");

        var empty = Assert.ThrowsExactly<ArgumentException>(() => MaeLinearProbe.Evaluate(ml.Data.LoadFromEnumerable(new List<Row>()), good));
        StringAssert.Contains(empty.Message, "The train data has no rows");

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeLinearProbe.Evaluate(good, good, options: new MaeLinearProbe.Options { L2PerRow = Array.Empty<double>() }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeLinearProbe.Evaluate(good, good, options: new MaeLinearProbe.Options { L2PerRow = new[] { -1.0 } }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeLinearProbe.Evaluate(good, good, options: new MaeLinearProbe.Options { HeldOutFraction = 1 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeLinearProbe.Evaluate(good, good, options: new MaeLinearProbe.Options { Threads = 0 }));
    }
}
