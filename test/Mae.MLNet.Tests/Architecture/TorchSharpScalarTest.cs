using Mae.MLNet.Model;
using Mono.Cecil;
using Mono.Cecil.Cil;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Architecture;

/// <summary>
/// The static half of "no libtorch Scalar can be freed during a native call" (the dynamic half counts finalized
/// Scalars: <c>InferenceWithoutForcedGcTest</c>, <c>TrainingWithoutForcedGcTest</c>). TorchSharp 0.107's
/// <see cref="Scalar"/> wraps a native pointer and has a finalizer; a Scalar that nothing holds once its handle has
/// been read can be finalized by a collection on another thread while libtorch still reads it. This reads the
/// library's IL and refuses (1) calls into TorchSharp methods that make such a Scalar inside — transitively, e.g.
/// <c>tensor + tensor</c> (alpha = 1), <c>1 - tensor</c>, <c>add_(tensor)</c>, <c>square()</c>,
/// <c>linalg.vector_norm(x, 2.0, …)</c> — and (2) a Scalar made by the library (<c>Scalar</c>'s implicit conversions,
/// <c>ToScalar()</c>) that does not go straight into a static field or a local the method disposes (<c>using</c>).
/// </summary>
[TestClass]
public sealed class TorchSharpScalarTest
{
    sealed class Scanner
    {
        readonly HashSet<string> makers = new(StringComparer.Ordinal);

        public Scanner(ModuleDefinition torchSharp)
        {
            var methods = torchSharp.GetTypes().SelectMany(t => t.Methods).Where(m => m.HasBody).ToList();
            foreach (var m in methods)
                if (!ReturnsScalar(m) && Calls(m).Any(ReturnsScalar)) makers.Add(m.FullName);
            int before;
            do
            {
                before = makers.Count;
                foreach (var m in methods)
                    if (!makers.Contains(m.FullName) && Calls(m).Any(r => makers.Contains(r.FullName))) makers.Add(m.FullName);
            } while (makers.Count != before);
        }

        public int MakerCount => makers.Count;

        static bool ReturnsScalar(MethodReference m) => m.ReturnType.FullName == "TorchSharp.Scalar";

        static IEnumerable<MethodReference> Calls(MethodDefinition m) =>
            m.Body.Instructions.Select(i => i.Operand).OfType<MethodReference>();

        /// <summary>The violations in one method of the library, as readable lines.</summary>
        public IEnumerable<string> Violations(MethodDefinition m)
        {
            if (!m.HasBody) yield break;
            var code = m.Body.Instructions;
            for (int k = 0; k < code.Count; k++)
            {
                if (code[k].Operand is not MethodReference r || code[k].OpCode.FlowControl != FlowControl.Call) continue;
                string where = $"{m.DeclaringType.FullName}::{m.Name} at IL_{code[k].Offset:x4}";
                if (makers.Contains(r.FullName))
                    yield return $"{where}: {r.DeclaringType.Name}.{r.Name}({string.Join(", ", r.Parameters.Select(p => p.ParameterType.Name))}) makes a Scalar nothing holds";
                else if (ReturnsScalar(r) && r.DeclaringType.Scope.Name.StartsWith("TorchSharp", StringComparison.Ordinal) && !Held(m, k))
                    yield return $"{where}: the Scalar from {r.DeclaringType.Name}.{r.Name} goes neither into a static field nor into a disposed local";
            }
        }

        /// <summary>The call at <paramref name="k"/> stores its Scalar in a static field, or in a local that the method
        /// disposes (how the compiler lowers <c>using</c>).</summary>
        static bool Held(MethodDefinition m, int k)
        {
            var code = m.Body.Instructions;
            if (k + 1 >= code.Count) return false;
            var next = code[k + 1];
            if (next.OpCode.Code == Code.Stsfld) return true;
            int? local = StoredLocal(next);
            if (local is null) return false;
            for (int j = 0; j + 1 < code.Count; j++)
                if (LoadedLocal(code[j]) == local)
                    for (int d = j + 1; d < Math.Min(j + 4, code.Count); d++)
                        if (code[d].Operand is MethodReference dispose && dispose.Name == "Dispose" && LoadedLocal(code[d - 1]) == local) return true;
            return false;
        }

        static int? StoredLocal(Instruction i) => i.OpCode.Code switch
        {
            Code.Stloc_0 => 0, Code.Stloc_1 => 1, Code.Stloc_2 => 2, Code.Stloc_3 => 3,
            Code.Stloc_S or Code.Stloc => ((VariableDefinition)i.Operand).Index,
            _ => null,
        };

        static int? LoadedLocal(Instruction i) => i.OpCode.Code switch
        {
            Code.Ldloc_0 => 0, Code.Ldloc_1 => 1, Code.Ldloc_2 => 2, Code.Ldloc_3 => 3,
            Code.Ldloc_S or Code.Ldloc => ((VariableDefinition)i.Operand).Index,
            _ => null,
        };
    }

    static readonly Lazy<Scanner> Shared = new(() => new Scanner(ModuleDefinition.ReadModule(typeof(Scalar).Assembly.Location)));

    static IEnumerable<string> ViolationsIn(Type type, params string[] methods)
    {
        using var module = ModuleDefinition.ReadModule(type.Assembly.Location);
        var t = module.GetType(type.FullName!.Replace('+', '/'));
        return t.Methods.Where(m => methods.Contains(m.Name)).SelectMany(Shared.Value.Violations).ToList();
    }

    [TestMethod]
    public void TheLibraryPassesLibtorchNoScalarThatNothingHolds()
    {
        using var library = ModuleDefinition.ReadModule(typeof(MaeConfig).Assembly.Location);
        var methods = library.GetTypes().SelectMany(t => t.Methods).ToList();
        var violations = methods.SelectMany(Shared.Value.Violations).ToList();
        Console.WriteLine($"{methods.Count} methods read; {Shared.Value.MakerCount} TorchSharp methods make a Scalar inside");
        Assert.IsGreaterThan(100, Shared.Value.MakerCount, "the scan of TorchSharp must find its Scalar-making methods");
        Assert.IsEmpty(violations, "Use ScalarMath (Plus, PlusInPlace, OneMinus, Squared, Times…) or a `using var s = x.ToScalar()`:\n  " + string.Join("\n  ", violations));
    }

    // The scanner on code written both ways: it must flag every unheld pattern and accept the held ones.
#pragma warning disable IDE0051 // read through their IL only
    static Tensor Unheld(Tensor a, Tensor b)
    {
        var sum = a + b;                       // alpha = 1 made inside TorchSharp
        var scaled = sum.mul_(0.5);            // implicit conversion, passed on directly
        var complement = 1 - scaled;           // the integer 1 made inside TorchSharp
        var s = 2.0.ToScalar();                // stored, never disposed
        return complement.square().add_(s);    // square() makes 2; add_(Scalar) makes alpha = 1
    }

    static Tensor Held(Tensor a, Tensor b)
    {
        using var half = 0.5.ToScalar();
        var scaled = a.Plus(b).mul_(half);
        return scaled.OneMinus().Squared().PlusInPlace(2.0);
    }
#pragma warning restore IDE0051

    [TestMethod]
    public void TheScanFlagsEveryUnheldPatternAndAcceptsHeldOnes()
    {
        var flagged = ViolationsIn(typeof(TorchSharpScalarTest), nameof(Unheld)).ToList();
        Console.WriteLine(string.Join("\n", flagged));
        string[] expected =
        {
            "Tensor.op_Addition(Tensor, Tensor) makes a Scalar", "the Scalar from Scalar.op_Implicit goes neither",
            "Tensor.op_Subtraction(Int32, Tensor) makes a Scalar", "the Scalar from ScalarExtensionMethods.ToScalar goes neither",
            "Tensor.square() makes a Scalar", "Tensor.add_(Scalar) makes a Scalar",
        };
        foreach (var e in expected) Assert.IsTrue(flagged.Any(v => v.Contains(e, StringComparison.Ordinal)), $"not flagged: {e}");
        Assert.HasCount(expected.Length, flagged, "one violation per unheld Scalar in Unheld");
        Assert.IsEmpty(ViolationsIn(typeof(TorchSharpScalarTest), nameof(Held)));
    }
}
