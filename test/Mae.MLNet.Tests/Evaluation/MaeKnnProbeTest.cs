using Mae.MLNet.Evaluation;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Evaluation;

[TestClass]
public class MaeKnnProbeTest
{
    /// <summary>Closed form: a test point at angle 0 has neighbours at cos = 1 (class 0) and two at cos = 0.5 (class 1).
    /// Weights exp(s/T): at T = 0.07, e^14.3 ≫ 2·e^7.1, class 0 wins; at T = 10, e^0.1 = 1.105 &lt; 2·e^0.05 = 2.103,
    /// class 1 wins; with k = 1 only the nearest counts.</summary>
    [TestMethod]
    public void WeightedVoteFollowsTheTemperature()
    {
        double a = Math.PI / 3; // cos = 0.5
        var train = tensor(new float[] { 2, 0, (float)Math.Cos(a), (float)Math.Sin(a), (float)Math.Cos(-a), (float)Math.Sin(-a), -1, 0 }, 4, 2);
        var trainY = new long[] { 0, 1, 1, 2 };
        var test = tensor(new float[] { 5, 0 }, 1, 2);
        var testY = new long[] { 0 };
        Assert.AreEqual(1.0, MaeKnnProbe.Evaluate(train, trainY, test, testY, new[] { 3 }, 0.07).AccuracyByK[3]);
        Assert.AreEqual(0.0, MaeKnnProbe.Evaluate(train, trainY, test, testY, new[] { 3 }, 10).AccuracyByK[3]);
        Assert.AreEqual(1.0, MaeKnnProbe.Evaluate(train, trainY, test, testY, new[] { 1 }, 10).AccuracyByK[1]);
    }

    /// <summary>Against a plain double-precision loop (sort by cosine, sum exp(s/T) per class) on random data, for
    /// several k, a k above N and chunks that do not divide M.</summary>
    [TestMethod]
    public void MatchesABruteForceReference()
    {
        var rng = new Random(3);
        int n = 300, m = 77, d = 12, classes = 5;
        var trainData = new float[n * d];
        var testData = new float[m * d];
        var trainY = new long[n];
        var testY = new long[m];
        for (int i = 0; i < n; i++) { trainY[i] = rng.Next(classes); for (int j = 0; j < d; j++) trainData[i * d + j] = (float)(rng.NextDouble() - 0.5 + (j == trainY[i] ? 0.6 : 0)); }
        for (int i = 0; i < m; i++) { testY[i] = rng.Next(classes); for (int j = 0; j < d; j++) testData[i * d + j] = (float)(rng.NextDouble() - 0.5 + (j == testY[i] ? 0.6 : 0)); }
        var ks = new[] { 1, 7, 20, 500 };
        var result = MaeKnnProbe.Evaluate(tensor(trainData, n, d), trainY, tensor(testData, m, d), testY, ks, 0.1, chunkSize: 16);

        foreach (int k in ks)
        {
            int hits = 0;
            for (int t = 0; t < m; t++)
            {
                var sims = Enumerable.Range(0, n).Select(i => (Sim: Cos(testData, t, trainData, i, d), Label: trainY[i]))
                    .OrderByDescending(x => x.Sim).Take(Math.Min(k, n));
                var votes = new double[classes];
                foreach (var (sim, label) in sims) votes[label] += Math.Exp(sim / 0.1);
                if (Array.IndexOf(votes, votes.Max()) == testY[t]) hits++;
            }
            Assert.AreEqual(hits / (double)m, result.AccuracyByK[k], 1e-12, $"k = {k}");
        }
        Assert.IsTrue(result.AccuracyByK[20] > 0.5, $"the clusters are separable; got {result}");
    }

    static double Cos(float[] a, int i, float[] b, int j, int d)
    {
        double dot = 0, na = 0, nb = 0;
        for (int c = 0; c < d; c++) { double x = a[i * d + c], y = b[j * d + c]; dot += x * y; na += x * x; nb += y * y; }
        return dot / Math.Sqrt(na * nb);
    }

    [TestMethod]
    public void BadInputIsNamed()
    {
        var f = zeros(3, 4);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => MaeKnnProbe.Evaluate(f, new long[] { 0, 1 }, f, new long[] { 0, 1, 2 }));
        StringAssert.Contains(ex.Message, "3 train feature rows but 2 labels");
        ex = Assert.ThrowsExactly<ArgumentException>(() => MaeKnnProbe.Evaluate(f, new long[] { 0, 1, 2 }, zeros(3, 5), new long[] { 0, 1, 2 }));
        StringAssert.Contains(ex.Message, "4 dimensions, the test features 5");
        var nan = full(3, 4, float.NaN);
        ex = Assert.ThrowsExactly<ArgumentException>(() => MaeKnnProbe.Evaluate(f, new long[] { 0, 1, 2 }, nan, new long[] { 0, 1, 2 }));
        StringAssert.Contains(ex.Message, "test features contain NaN");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeKnnProbe.Evaluate(f, new long[] { 0, -1, 2 }, f, new long[] { 0, 1, 2 }));
    }
}
