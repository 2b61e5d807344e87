using Mae.MLNet.Model;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet.Tests.FineTuning;

[TestClass]
public class MaeFineTuneTrainerTest
{
    public sealed class Row
    {
        [VectorType(256)] public float[] Pixels { get; set; } = Array.Empty<float>();
        public string Name { get; set; } = "";
    }

    public sealed class Prediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public string PredictedName { get; set; } = "";
    }

    static readonly string[] Names = { "top", "middle", "bottom" };

    static IDataView Data(MLContext ml, int n, int seed = 7)
    {
        var (images, labels) = TinyFt.Data(n, seed);
        return ml.Data.LoadFromEnumerable(images.Zip(labels, (p, l) => new Row { Pixels = p, Name = Names[l] }));
    }

    static MaeFineTuneTrainer.Options TinyOptions(IDataView? validation = null) => new()
    {
        LabelColumnName = "Label", InputColumnName = "Pixels", Encoder = new MaeEncoder(TinyFt.Config),
        Training = TinyFt.Options(3), ValidationData = validation, InferenceBatchSize = 5,
    };

    [TestMethod]
    public void TrainerProducesScoreAndPredictedLabelThatEvaluateMapKeyToValueAndPredictionEngineUse()
    {
        var ml = new MLContext(seed: 0);
        var train = Data(ml, 48);
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Fit(train);
        var validation = toKey.Transform(Data(ml, 24, seed: 99));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", "Name")
            .Append(ml.MulticlassClassification.Trainers.MaeFineTune(TinyOptions(validation)))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel"));
        var model = pipeline.Fit(train);
        var classifier = ((IEnumerable<ITransformer>)model).OfType<MaeClassifierTransformer>().Single();
        Assert.AreEqual(3, classifier.NumClasses);
        CollectionAssert.AreEqual(Names, classifier.ClassNames());
        Assert.AreEqual(3, classifier.FineTuning!.ValidationAccuracies.Count);

        var test = Data(ml, 21, seed: 5);
        var scored = model.Transform(test);
        Assert.AreEqual(new KeyDataViewType(typeof(uint), 3), scored.Schema["PredictedLabel"].Type);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 3), scored.Schema["Score"].Type);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        scored.Schema["Score"].GetSlotNames(ref slots);
        CollectionAssert.AreEqual(Names, slots.DenseValues().Select(s => s.ToString()).ToArray());

        var metrics = ml.MulticlassClassification.Evaluate(scored);
        var rows = ml.Data.CreateEnumerable<Prediction>(scored, reuseRowObject: false).ToList();
        var (_, truth) = TinyFt.Data(21, seed: 5);
        double accuracy = rows.Zip(truth).Count(z => z.First.PredictedName == Names[z.Second]) / 21.0;
        Assert.AreEqual(accuracy, metrics.MicroAccuracy, 1e-12, "EvaluateMulticlass agrees with the mapped-back names");
        Assert.IsTrue(accuracy > 0.6, $"learns the synthetic task (chance 1/3): {accuracy:P0}");
        double logLoss = rows.Zip(truth).Average(z => -Math.Log(Math.Max(z.First.Score[z.Second], 1e-15)));
        Assert.AreEqual(logLoss, metrics.LogLoss, 1e-4, "Score holds the class probabilities in key order");
        foreach (var r in rows)
        {
            Assert.AreEqual(1.0, r.Score.Sum(), 1e-5);
            Assert.AreEqual(Names[Array.IndexOf(r.Score, r.Score.Max())], r.PredictedName);
        }

        // PredictionEngine (row by row) gives the batched transform's scores.
        var engine = ml.Model.CreatePredictionEngine<Row, Prediction>(model);
        var (images, _) = TinyFt.Data(21, seed: 5);
        for (int i = 0; i < 4; i++)
        {
            var p = engine.Predict(new Row { Pixels = images[i] });
            Assert.AreEqual(rows[i].PredictedName, p.PredictedName);
            for (int k = 0; k < 3; k++) Assert.AreEqual(rows[i].Score[k], p.Score[k], 1e-5f);
        }

        // Model.Save / Load: FineTunePersistenceTest.
    }

    [TestMethod]
    public void BadInputIsRejectedBeforeTraining()
    {
        var ml = new MLContext(seed: 0);
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Fit(Data(ml, 12));
        var data = toKey.Transform(Data(ml, 12));
        ArgumentException Fails(IDataView d, MaeFineTuneTrainer.Options o)
            => Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.MaeFineTune(o).Fit(d));

        // Label not a key type.
        var text = TinyOptions(); text.LabelColumnName = "Name";
        StringAssert.Contains(Fails(data, text).Message, "key type");
        // Fewer than 2 classes.
        var one = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 8).Select(_ => new Row { Pixels = new float[256], Name = "only" }));
        one = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Fit(one).Transform(one);
        StringAssert.Contains(Fails(one, TinyOptions()).Message, "at least 2 classes");
        // Image size / channels not matching the model.
        var big = TinyOptions(); big.Encoder = new MaeEncoder(TinyFt.Config with { ImageSize = 32 });
        StringAssert.Contains(Fails(data, big).Message, "1024");
        var rgb = TinyOptions(); rgb.Encoder = new MaeEncoder(TinyFt.Config with { InChannels = 3 });
        StringAssert.Contains(Fails(data, rgb).Message, "768");
        // Empty data.
        var empty = toKey.Transform(ml.Data.LoadFromEnumerable(new List<Row>()));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ml.MulticlassClassification.Trainers.MaeFineTune(TinyOptions()).Fit(empty)).Message, "no rows");
        // No starting point, or two.
        var none = TinyOptions(); none.Encoder = null;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ml.MulticlassClassification.Trainers.MaeFineTune(none)).Message, "exactly one starting point");
        // A classifier with another class count.
        var wrong = TinyOptions(); wrong.Encoder = null; wrong.Model = new VitClassifier(TinyFt.Config, 5);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ml.MulticlassClassification.Trainers.MaeFineTune(wrong).Fit(data)).Message, "5 classes");
    }
}
