package sparkasr

import java.nio.charset.StandardCharsets

import org.apache.spark.ml.param._
import org.json4s._
import org.json4s.jackson.JsonMethods
import org.scalatest.funsuite.AnyFunSuite

/** Every Scala stage's params against the Python side's exported option table
  * (`python -m sparkasr.generated --json`, committed as scala/src/test/resources/sparkasr/params.json
  * and kept current by `--check`): the same names, types and defaults, and a value outside `choices`
  * refused. The params are generated from the same table (`sparkasr.spark.params`); this checks that
  * each stage mixes in its own trait and that nothing else declares a param. The Scala class of a
  * stage is the one named by its `python_class` (our JVM classes carry the Python class paths). */
class ParamsTableSuite extends AnyFunSuite {
  implicit val formats: Formats = DefaultFormats

  private lazy val table: Option[JValue] =
    Option(getClass.getResourceAsStream("/sparkasr/params.json")).map { in =>
      try JsonMethods.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8)) finally in.close()
    }

  private def typeName(p: Param[_]): String = p match {
    case _: IntParam => "int"
    case _: DoubleParam => "float"
    case _: BooleanParam => "bool"
    case _: StringArrayParam => "list<string>"
    case _: DoubleArrayParam => "list<float>"
    case _: IntArrayParam => "list<int>"
    case _: LongParam => "long"
    case _: FloatParam => "float32"
    case other if other.getClass == classOf[Param[_]] => "string"
    case other => other.getClass.getSimpleName
  }

  private def asJson(v: Any): JValue = v match {
    case s: String => JString(s)
    case i: Int => JInt(i)
    case d: Double => JDouble(d)
    case b: Boolean => JBool(b)
    case a: Array[_] => JArray(a.toList.map(asJson))
    case other => JString(other.toString)
  }

  private def sameValue(a: JValue, b: JValue): Boolean = (a, b) match {
    case (JInt(x), JDouble(y)) => x.toDouble == y
    case (JDouble(x), JInt(y)) => x == y.toDouble
    case (JDouble(x), JDouble(y)) => x == y
    case (JArray(xs), JArray(ys)) => xs.size == ys.size && xs.zip(ys).forall { case (x, y) => sameValue(x, y) }
    case _ => a == b
  }

  /** A value of the param's type that is not among `choices`. */
  private def outside(p: Param[_], choices: List[JValue]): Any = p match {
    case _: IntParam => (choices.collect { case JInt(i) => i.toInt }.maxOption.getOrElse(0)) + 1000
    case _: DoubleParam => choices.collect { case JDouble(d) => d; case JInt(i) => i.toDouble }.maxOption.getOrElse(0.0) + 1000.5
    case _: StringArrayParam => Array("__not_a_choice__")
    case _ => "__not_a_choice__"
  }

  private def fromJson(p: Param[_], v: JValue): Any = (p, v) match {
    case (_: IntParam, JInt(i)) => i.toInt
    case (_: DoubleParam, JInt(i)) => i.toDouble
    case (_: DoubleParam, JDouble(d)) => d
    case (_: BooleanParam, JBool(b)) => b
    case (_: StringArrayParam, JArray(xs)) => xs.map(_.extract[String]).toArray
    case (_, JString(s)) => s
    case (_, other) => fail(s"${p.name}: choice $other does not fit the param type")
  }

  test("the option table exists and names our five stages") {
    assume(table.isDefined, "scala/src/test/resources/sparkasr/params.json is not there yet (the Python side exports it)")
    val stages = (table.get \ "stages").extract[Map[String, JValue]]
    assert((table.get \ "format").extract[Int] == 1)
    assert(stages.keySet == Set("AudioAssembler", "WhisperForCTC", "Wav2Vec2ForCTC", "HubertForCTC", "WerEvaluator"))
  }

  test("each Scala stage has the Python stage's params: names, types, defaults, choices") {
    assume(table.isDefined, "scala/src/test/resources/sparkasr/params.json is not there yet (the Python side exports it)")
    val stages = (table.get \ "stages").extract[Map[String, JValue]]
    var checked = 0
    for ((stage, spec) <- stages) {
      val cls = (spec \ "python_class").extract[String]
      val instance = Class.forName(cls).getConstructor().newInstance().asInstanceOf[Params]
      val rows = (spec \ "params").extract[List[JValue]]
      val byName = instance.params.map(p => p.name -> p).toMap
      assert(byName.keySet == rows.map(r => (r \ "name").extract[String]).toSet, s"$stage param names")
      for (row <- rows) {
        val name = (row \ "name").extract[String]
        val p = byName(name).asInstanceOf[Param[Any]]
        assert(typeName(p) == (row \ "type").extract[String], s"$stage.$name type")
        (row \ "default") match {
          case JNull | JNothing => assert(!instance.hasDefault(p), s"$stage.$name should have no default")
          case d =>
            assert(instance.hasDefault(p), s"$stage.$name default")
            assert(sameValue(asJson(instance.getDefault(p).get), d), s"$stage.$name default ${instance.getDefault(p).get} vs $d")
        }
        (row \ "choices") match {
          case JArray(choices) =>
            choices.foreach(c => assert(p.isValid(fromJson(p, c)), s"$stage.$name refuses its choice $c"))
            val bad = outside(p, choices)
            intercept[IllegalArgumentException](ParamPair(p, bad)) // what set() and copy() go through
          case _ =>
        }
        checked += 1
      }
    }
    assert(checked > 40)
  }
}
