using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// A fine-tuned MAE classifier (ViT, or ConvNeXt V2 after FCMAE) in an ML.NET pipeline: reads the image column, adds
/// <c>Score</c> and <c>PredictedLabel</c> as ML.NET's multiclass trainers do (<see cref="MaeImageClassifierTransformer"/>).
/// Made by <c>MulticlassClassification.Trainers.MaeFineTune</c>.
/// </summary>
public sealed class MaeClassifierTransformer : MaeImageClassifierTransformer
{
    internal MaeClassifierTransformer(VitClassifier model, PixelNormalization normalization, string inputColumnName,
        string labelColumnName, string scoreColumnName, string predictedLabelColumnName, KeyDataViewType labelType, DataViewSchema.Annotations labelAnnotations,
        int batchSize, MaeDevice device)
        : this(FineTuneNet.Of(model), model, null, normalization, inputColumnName, labelColumnName, scoreColumnName, predictedLabelColumnName,
               labelType, labelAnnotations, batchSize, device) { }

    internal MaeClassifierTransformer(ConvNextV2 model, PixelNormalization normalization, string inputColumnName,
        string labelColumnName, string scoreColumnName, string predictedLabelColumnName, KeyDataViewType labelType, DataViewSchema.Annotations labelAnnotations,
        int batchSize, MaeDevice device)
        : this(FineTuneNet.Of(model), null, model, normalization, inputColumnName, labelColumnName, scoreColumnName, predictedLabelColumnName,
               labelType, labelAnnotations, batchSize, device) { }

    MaeClassifierTransformer(FineTuneNet net, VitClassifier? vit, ConvNextV2? convNext, PixelNormalization normalization, string inputColumnName,
        string labelColumnName, string scoreColumnName, string predictedLabelColumnName, KeyDataViewType labelType, DataViewSchema.Annotations labelAnnotations,
        int batchSize, MaeDevice device)
        : base(net.Geometry, normalization, inputColumnName, labelColumnName, scoreColumnName, predictedLabelColumnName, labelType,
               labelAnnotations, net.NumClasses, batchSize, device)
    {
        this.net = net;
        this.vit = vit;
        ConvNext = convNext;
        runner = new ClassifierRunner(net.Module, net.Geometry, net.NumClasses, device, Normalization);
    }

    readonly FineTuneNet net;
    readonly VitClassifier? vit;
    readonly ClassifierRunner runner;

    /// <summary>The fine-tuned ViT classifier (official parameter names; <see cref="Interop.MaeWeightFile.Save"/> writes
    /// it). A ConvNeXt V2 classifier has none (see <see cref="ConvNext"/>).</summary>
    public VitClassifier Model => vit ?? throw new InvalidOperationException("This classifier is a ConvNeXt V2 (see ConvNext); it has no ViT model.");
    /// <summary>The fine-tuned ConvNeXt V2 (timm's names; <see cref="Interop.MaeWeightFile.SaveConvNextV2"/> writes it),
    /// or null for a ViT classifier.</summary>
    public ConvNextV2? ConvNext { get; }
    /// <summary>The images the classifier takes (size, channels).</summary>
    internal MaeConfig Geometry => net.Geometry;
    public override int NumClasses => net.NumClasses;
    /// <summary>Losses, validation accuracies and timings of the fine-tuning run.</summary>
    public MaeFineTuneResult? FineTuning { get; internal init; }
    private protected override ITensorFunction Runner => runner;

    /// <summary>This classifier (the same model, not a copy) reading <paramref name="inputColumnName"/> of
    /// <paramref name="inputSchema"/> instead of the column it was trained on: e.g. trained on an image-path column (the
    /// library's file source decodes it, naming or skipping bad files), then saved over the pixels of
    /// <c>MaeEvaluationPixels</c> (the same resize and centre crop in ML.NET's own transforms), the form a model zip can
    /// hold. The column is checked against the model.</summary>
    public MaeClassifierTransformer WithInput(string inputColumnName, DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ImageColumn.Bind(inputSchema, inputColumnName, net.Geometry);
        return new MaeClassifierTransformer(net, vit, ConvNext, Normalization, inputColumnName, LabelColumnName, ScoreColumnName, PredictedLabelColumnName,
            LabelType, LabelAnnotations, BatchSize, Device)
        { FineTuning = FineTuning, InputSchema = inputSchema, Host = Host };
    }

    /// <summary>The network up to the pooled, normalised features as ONNX, the head as ML.NET's multiclass model
    /// (<see cref="FineTunePersistence"/>).</summary>
    private protected override TransformerChain<ITransformer> BuildPersisted(MaeHost host, DataViewSchema inputSchema)
        => FineTunePersistence.Build(host, this, inputSchema);
}
