using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Runtime;

namespace Mae.MLNet;

/// <summary>
/// The caller's ML.NET environment, taken from the catalog our extension method was called on
/// (<c>mlContext.Transforms</c> or <c>mlContext.MulticlassClassification.Trainers</c>) and carried by the estimators
/// to their transformers, so that the ML.NET transformers Mae.MLNet builds (to save a model zip) belong to the
/// caller's <see cref="MLContext"/>: its log, its cancellation, its settings — not to a context of our own.
/// <para>What ML.NET 5.0.1 makes reachable: a <see cref="TransformsCatalog"/> is public and ML.NET's own extension
/// methods on it (ApplyOnnxModel, ExtractPixels, DropColumns) build transformers in its environment, so the
/// featurizer needs nothing else. The environment itself (<c>IInternalCatalog.Environment</c>) and a
/// <see cref="TransformsCatalog"/> for a trainers catalog (its constructor) are internal: the fine-tuned classifier's
/// save, which already builds ML.NET's multiclass model through internal constructors (<see cref="MaximumEntropyHead"/>),
/// reaches them by reflection the same way, with the same clear error on a Microsoft.ML without them.</para>
/// </summary>
internal sealed class MaeHost
{
    const BindingFlags Instance = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;
    readonly object catalog;
    TransformsCatalog? transforms;
    IHostEnvironment? environment;

    MaeHost(object catalog, TransformsCatalog? transforms)
    {
        this.catalog = catalog;
        this.transforms = transforms;
    }

    public static MaeHost Of(TransformsCatalog catalog) => new(catalog ?? throw new ArgumentNullException(nameof(catalog)), catalog);

    public static MaeHost Of(DataOperationsCatalog catalog) => new(catalog ?? throw new ArgumentNullException(nameof(catalog)), null);

    public static MaeHost Of(MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog)
        => new(catalog ?? throw new ArgumentNullException(nameof(catalog)), null);

    /// <summary>The caller's environment (an ML.NET catalog's internal <c>IInternalCatalog.Environment</c>).</summary>
    public IHostEnvironment Environment => environment ??= ReadEnvironment(catalog);

    /// <summary>ML.NET's transforms catalog over the caller's environment.</summary>
    public TransformsCatalog Transforms => transforms ??= MakeTransforms(Environment);

    static IHostEnvironment ReadEnvironment(object catalog)
    {
        var property = catalog.GetType().GetInterfaces().FirstOrDefault(i => i.FullName == "Microsoft.ML.Data.IInternalCatalog")
            ?.GetProperty("Environment", Instance);
        return property?.GetValue(catalog) as IHostEnvironment ?? throw Unsupported("IInternalCatalog.Environment of an ML.NET catalog");
    }

    static TransformsCatalog MakeTransforms(IHostEnvironment env)
    {
        var ctor = typeof(TransformsCatalog).GetConstructor(Instance, null, new[] { typeof(IHostEnvironment) }, null)
            ?? throw Unsupported("the TransformsCatalog(IHostEnvironment) constructor");
        return (TransformsCatalog)ctor.Invoke(new object[] { env });
    }

    static NotSupportedException Unsupported(string what) => new(
        $"This Microsoft.ML ({typeof(MLContext).Assembly.GetName().Version}) lacks {what}, which Mae.MLNet uses to build the ML.NET " +
        "transformers of a saved fine-tuned classifier in your MLContext (Microsoft.ML 5.0.1 has it). Use the Microsoft.ML version " +
        "Mae.MLNet references, or save with MaeWeightFile.Save / MaeOnnxExport.Export.");
}
