using Microsoft.ML;

namespace Mae.MLNet;

internal static class OnnxPersistence
{
    public static void Save(MaeFeaturizerTransformer transformer, ModelSaveContext ctx)
        => throw new NotSupportedException("Saving MaeFeaturize needs the ONNX export, which is not built yet.");
}
