using Mae.MLNet.Evaluation;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Evaluation;

/// <summary>The kNN probe over ML.NET data reads the same features and labels as the tensor overload sees.</summary>
[TestClass]
public class MaeKnnProbeDataViewTest
{
    public sealed class Row
    {
        [VectorType(3)] public float[] Features { get; set; } = Array.Empty<float>();
        public string Name { get; set; } = "";
        public uint Index { get; set; }
        public float Wrong { get; set; }
    }

    static readonly string[] Names = { "a", "b", "c" };

    static List<Row> Rows(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(i =>
        {
            int k = rng.Next(3);
            var f = Enumerable.Range(0, 3).Select(j => (float)((rng.NextDouble() - 0.5) * 3 + (j == k ? 1.0 : 0.0))).ToArray();
            return new Row { Features = f, Name = Names[k], Index = (uint)k };
        }).ToList();
    }

    [TestMethod]
    public void KeyAndIntegerLabelsGiveTheTensorOverloadsResult()
    {
        var ml = new MLContext(seed: 0);
        var trainRows = Rows(60, 1);
        var testRows = Rows(25, 2);
        // Key values in order of first appearance: map the expected labels the same way.
        var train = ml.Data.LoadFromEnumerable(trainRows);
        var test = ml.Data.LoadFromEnumerable(testRows);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Fit(train);
        var order = trainRows.Select(r => r.Name).Distinct().ToList();

        using var scope = NewDisposeScope();
        var expected = MaeKnnProbe.Evaluate(
            tensor(trainRows.SelectMany(r => r.Features).ToArray(), trainRows.Count, 3), trainRows.Select(r => (long)order.IndexOf(r.Name)).ToArray(),
            tensor(testRows.SelectMany(r => r.Features).ToArray(), testRows.Count, 3), testRows.Select(r => (long)order.IndexOf(r.Name)).ToArray(),
            new[] { 1, 5, 20 });
        var byKey = MaeKnnProbe.Evaluate(keys.Transform(train), keys.Transform(test), "Features", "Label", new[] { 1, 5, 20 });
        var byIndex = MaeKnnProbe.Evaluate(train, test, "Features", "Index", new[] { 1, 5, 20 });
        Console.WriteLine($"{expected} | {byKey} | {byIndex}");
        Assert.IsTrue(expected.AccuracyByK[5] > 0.4 && expected.AccuracyByK[5] < 1, "above chance, not trivial");
        foreach (var k in new[] { 1, 5, 20 })
        {
            Assert.AreEqual(expected.AccuracyByK[k], byKey.AccuracyByK[k], 0.0, $"k={k}, key labels");
            Assert.AreEqual(expected.AccuracyByK[k], byIndex.AccuracyByK[k], 0.0, $"k={k}, integer labels");
        }
        Assert.AreEqual(25, byKey.TestCount);

        // A test row whose key is missing (a class the key mapping has never seen) is left out.
        var unseen = ml.Data.LoadFromEnumerable(testRows.Append(new Row { Features = new float[] { 1, 0, 0 }, Name = "never seen" }));
        Assert.AreEqual(25, MaeKnnProbe.Evaluate(keys.Transform(train), keys.Transform(unseen), "Features", "Label", new[] { 5 }).TestCount);
    }

    [TestMethod]
    public void BadColumnsAreNamed()
    {
        var ml = new MLContext(seed: 0);
        var data = ml.Data.LoadFromEnumerable(Rows(10, 3));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Fit(data).Transform(data);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeKnnProbe.Evaluate(data, data, "Nope", "Index")).Message, "'Nope' was not found");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeKnnProbe.Evaluate(data, data, "Features", "Name")).Message, "key type");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeKnnProbe.Evaluate(data, data, "Features", "Wrong")).Message, "integer class indices");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeKnnProbe.Evaluate(data, data, "Index", "Index")).Message, "vector of Single");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeKnnProbe.Evaluate(keyed, data, "Features", "Label")).Message, "'Label' was not found");
        var empty = ml.Data.LoadFromEnumerable(new List<Row>());
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => MaeKnnProbe.Evaluate(data, empty, "Features", "Index")).Message, "no rows");
        // Train and test keyed by different mappings (3 vs 2 key values), or keys against plain indices.
        var two = ml.Data.LoadFromEnumerable(Rows(10, 3).Where(r => r.Name != "c").ToList());
        var twoKeyed = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Fit(two).Transform(two);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => MaeKnnProbe.Evaluate(keyed, twoKeyed, "Features", "Label")).Message, "same fitted MapValueToKey");
    }
}
