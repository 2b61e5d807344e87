using Microsoft.ML;

namespace Mae.MLNet;

internal static class FineTunePersistence
{
    /// <summary>Saving the fine-tuned classifier into an ML.NET model zip (as an ONNX graph of encoder + head, like
    /// the featurizer) is not built yet.</summary>
    public static void Save(MaeClassifierTransformer transformer, ModelSaveContext ctx)
        => throw new NotSupportedException(
            "Saving a MaeFineTune model with MLContext.Model.Save is not supported yet (the ONNX persistence of the classifier is still to be built). " +
            "Save the weights with MaeCheckpoint.Save(transformer.Model, path) and load them back with MaeCheckpoint.LoadClassifier.");
}
