using Mae.MLNet.Model;

namespace Mae.MLNet.Tests.Architecture;

/// <summary>
/// Issue 25's ceiling on the public surface: what a user needs, at most 75 top-level public types (nested types belong
/// to their owner and are not counted). The API files track every member; this keeps the type count from creeping back.
/// 76 since 2026-12-07: <c>Evaluation.MaeLinearProbe</c>, the linear evaluation a user runs on featurizer output (its
/// options, result and held-out choice are nested in it).
/// </summary>
[TestClass]
public sealed class PublicSurfaceTest
{
    const int MaxTopLevelTypes = 76;

    [TestMethod]
    public void TheLibraryExportsAtMost76TopLevelTypes()
    {
        var types = typeof(MaeConfig).Assembly.GetExportedTypes().Where(t => !t.IsNested)
            .Select(t => t.FullName!).Order(StringComparer.Ordinal).ToList();
        CollectionAssert.Contains(types, "Microsoft.ML.MaeCatalog", "the reflection sees the catalog");
        CollectionAssert.DoesNotContain(types, typeof(MaeConfig.PresetChoice).FullName, "nested types are not counted");
        Console.WriteLine($"{types.Count} top-level public types:\n  " + string.Join("\n  ", types));
        Assert.IsLessThanOrEqualTo(MaxTopLevelTypes, types.Count,
            $"{types.Count} top-level public types (at most {MaxTopLevelTypes}): make new types internal or nest them in their owner.");
    }
}
