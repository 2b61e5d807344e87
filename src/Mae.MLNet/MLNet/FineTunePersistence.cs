using Microsoft.ML;

namespace Mae.MLNet;

internal static class FineTunePersistence
{
    /// <summary>
    /// Not possible yet through ML.NET's public surface: the featurizer's route (save as ML.NET's OnnxTransformer)
    /// gives the Score vector but not the scalar key column PredictedLabel — OnnxTransformer types a scalar ONNX
    /// output but fails to read it (tried here with Int64 and Single ArgMax outputs), and the constructors of ML.NET's
    /// own multiclass predictors, which would compute PredictedLabel from a score vector, are internal.
    /// </summary>
    public static void Save(MaeClassifierTransformer transformer, ModelSaveContext ctx)
        => throw new NotSupportedException(
            "A MaeFineTune model cannot be written into an ML.NET model zip yet: ML.NET's OnnxTransformer cannot produce the " +
            "scalar key column PredictedLabel, and ML.NET's multiclass predictors cannot be built from outside. " +
            "Save the weights with MaeCheckpoint.Save(transformer.Model, path) and load them with MaeCheckpoint.LoadClassifier, " +
            "or export the classifier with transformer.Model.ExportOnnx(path) (features, logits, probabilities) and score it with ONNX Runtime.");
}
